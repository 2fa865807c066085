from services.classifier.app import ClassifierSettings, build
from shared.service import serve

if __name__ == "__main__":
    settings = ClassifierSettings()
    serve(build(settings)[1], settings)
