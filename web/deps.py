"""Request-scoped helpers shared by the routers."""
from __future__ import annotations

from fastapi import Request


def get_container(request: Request):
    """The app's container (FastAPI dependency): `c = Depends(get_container)`."""
    return request.app.state.container_holder.get()


def client_address(request: Request) -> str:
    """The client's address as uvicorn saw it (behind a proxy: run uvicorn with --proxy-headers)."""
    return request.client.host if request.client else "unknown"
