import sys

from services.classifier.app import ClassifierSettings, build
from services.classifier.datafiles import DataError
from services.classifier.model import ModelLoadError
from services.classifier.place import GazetteerError
from services.classifier.urgency_model import UrgencyModelError
from shared.service import serve
from shared.taxonomy import ConfigError

if __name__ == "__main__":
    settings = ClassifierSettings()
    try:
        app = build(settings)[1]
    except (ModelLoadError, DataError, GazetteerError, ConfigError, UrgencyModelError) as exc:
        # A bad model or configuration is the operator's to fix: say what, without a traceback.
        print(f"classifier: cannot start: {exc}", file=sys.stderr)
        sys.exit(2)
    serve(app, settings)
