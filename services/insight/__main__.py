from services.insight.app import InsightSettings, build
from shared.service import serve

if __name__ == "__main__":
    settings = InsightSettings()
    serve(build(settings)[1], settings)
