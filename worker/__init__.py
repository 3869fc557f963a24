"""What a worker process is: the Celery app (`app.py`), its beat schedule (`beat.py`), JSON logs
(`logging.py`) and the broker guard (`broker_resilience.py`). `celery -A worker worker` finds the
app here. Settings and wiring live in `core/`, the `sessionpack` command in `cli/`.
"""
from .app import app

__all__ = ["app"]
