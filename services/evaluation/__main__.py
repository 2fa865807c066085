from services.evaluation.app import EvaluationSettings, build
from shared.service import serve

if __name__ == "__main__":
    settings = EvaluationSettings()
    serve(build(settings)[1], settings)
