"""Request-scoped helpers shared by the routers."""
from __future__ import annotations

from fastapi import Request


def get_container(request: Request):
    """The app's container (FastAPI dependency): `c = Depends(get_container)`."""
    return request.app.state.container_holder.get()


def client_address(request: Request) -> str:
    """The client's address as uvicorn gives it: with --proxy-headers (the Procfile's web line)
    the X-Forwarded-For address when the connection comes from FORWARDED_ALLOW_IPS, else the
    peer's own address (a header from anyone else is ignored)."""
    return request.client.host if request.client else "unknown"
