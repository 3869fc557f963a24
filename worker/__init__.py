"""What a worker process is: the Celery app, its beat schedule, signals, logging and the broker
guard. `celery -A worker worker` finds the app here. Settings and wiring live in `core/`, the
`sessionpack` command in `cli/`.
"""
from .app import app

__all__ = ["app"]
