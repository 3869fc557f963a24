"""The app's task base class: redacted reprs (worker/redaction.py), and arguments that must fit.

A task called with arguments its body does not take (an unknown keyword, a missing one, a
positional argument it has no place for) would raise TypeError inside the worker: a failed task
with a traceback, its message shown in the failure log. A forged or stale message to an internal
task is refused instead, cleanly: the task answers `{"error": {"code": "invalid_request", ...}}`,
nothing runs and nothing is written, and the log line names the task and the problem, never the
values. Public tasks take `*args, **kwargs` and check their messages themselves (tasks/args.py).
"""
from __future__ import annotations

import inspect
import logging
from typing import Any

from .redaction import RedactingTask

log = logging.getLogger("sessionpack.tasks")


def argument_problem(run, args: tuple, kwargs: dict) -> str | None:
    """Why `run(*args, **kwargs)` cannot be called (TypeError's words, names bounded), or None."""
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        text = str(exc)
        return text if len(text) <= 200 else text[:200] + "..."
    return None


class SessionpackTask(RedactingTask):
    """Every task of the app (`Celery(task_cls=...)`)."""

    def __call__(self, *args: Any, **kwargs: Any):
        problem = argument_problem(self.run, args, kwargs)
        if problem is not None:
            log.warning("%s refused a message whose arguments do not fit it: %s; nothing was done", self.name, problem)
            return {"error": {"code": "invalid_request",
                              "message": f"{self.name} refused: {problem}; it takes ids only, as its own code "
                                         "sends them; nothing was done"}}
        return super().__call__(*args, **kwargs)
