"""The app factory: `uvicorn --factory web.app:create_app`.

Routers are listed in ROUTERS, one module per audience; each module exposes `router` (a FastAPI
APIRouter). Registering a new audience is one line in ROUTERS.
"""
from __future__ import annotations

import importlib
import threading
from typing import Callable

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles

from . import logs
from .errors import install_error_pages
from .security import BodySizeLimit, SecurityHeaders
from .templating import STATIC_DIR

# One line per audience: "module" (its `router` is included as is).
ROUTERS: list[str] = [
    "web.manage",
    "web.meeting",
    "web.room",
    "web.owner",
    "web.api",
    "web.webhooks",
]


def _default_container():
    """The process-wide container, through the one wiring function (built on first use)."""
    from core.wiring import get_container
    from worker.app import app  # noqa: F401  (registers the Celery app the container sends tasks with)

    return get_container()


class ContainerHolder:
    """Builds the container on first use, so importing or creating the app connects to nothing."""

    def __init__(self, container=None, factory: Callable | None = None):
        self._container = container
        self._factory = factory or _default_container
        self._lock = threading.Lock()

    def get(self):
        if self._container is None:
            with self._lock:
                if self._container is None:
                    self._container = self._factory()
        return self._container


def healthz():
    """Liveness for compose and load balancers: the process answers (no database round trip)."""
    return PlainTextResponse("ok")


def create_app(container=None, *, routers: list[str] | None = None) -> FastAPI:
    """The web app. `container` is for tests; by default it is built lazily from settings."""
    logs.install()
    app = FastAPI(title="sessionpack", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.container_holder = ContainerHolder(container)
    for name in routers if routers is not None else ROUTERS:
        app.include_router(importlib.import_module(name).router)
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_error_pages(app)
    # Outermost last: the security headers wrap every answer (the size limit's 413 too); the size
    # limit still runs before anything reads the body.
    app.add_middleware(BodySizeLimit)
    app.add_middleware(SecurityHeaders)
    return app
