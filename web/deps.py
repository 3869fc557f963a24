"""Request-scoped helpers shared by the routers."""
from __future__ import annotations

from fastapi import Request


async def get_container(request: Request):
    """The app's container (FastAPI dependency): `c = Depends(get_container)`.

    Async because it never blocks (after the first request, which builds the container): FastAPI
    runs a plain `def` dependency in the thread pool, a hand-off to a thread and back on every
    request of every route for what is an attribute read."""
    return request.app.state.container_holder.get()


def client_address(request: Request) -> str:
    """The client's address as uvicorn gives it: with --proxy-headers (the Procfile's web line)
    the X-Forwarded-For address when the connection comes from FORWARDED_ALLOW_IPS, else the
    peer's own address (a header from anyone else is ignored)."""
    return request.client.host if request.client else "unknown"
