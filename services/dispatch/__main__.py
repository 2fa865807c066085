from services.dispatch.app import DispatchSettings, build
from shared.service import serve

if __name__ == "__main__":
    settings = DispatchSettings()
    serve(build(settings)[1], settings)
