"""WSGI entry point: `gunicorn wsgi:app` serves the web side (run `winback worker` beside it for the scheduler)."""
from app import create_app

app = create_app()
