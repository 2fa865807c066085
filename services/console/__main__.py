from services.console.app import create_app
from services.console.settings import ConsoleSettings
from shared.service import serve

if __name__ == "__main__":
    settings = ConsoleSettings()
    serve(create_app(settings), settings)
