"""Celery app, settings, beat schedule, the wiring function and the CLI.

`celery -A worker worker` finds the app here.
"""
from .app import app

__all__ = ["app"]
