from services.recorder.app import RecorderSettings, build
from shared.service import serve

if __name__ == "__main__":
    settings = RecorderSettings()
    serve(build(settings)[1], settings)
