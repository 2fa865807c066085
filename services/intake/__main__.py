from services.intake.app import IntakeSettings, create_app
from shared.service import serve

if __name__ == "__main__":
    settings = IntakeSettings()
    serve(create_app(settings), settings)
