"""`/room/<id>`: the builtin provider's room links open a real video room.

The builtin provider (services/conferencing/builtin.py) makes `PUBLIC_BASE_URL/room/<id>` links
without any API. This page sends an active meeting's link on to a Jitsi Meet room of the same
unguessable id on `JITSI_BASE_URL`, so those links (in emails already sent, too) reach a room; a
cancelled session's room, or an unknown id, is a plain 404 (unknown ids count towards the
client's unknown-link limit).
"""
from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from models import Meeting

from .deps import get_container
from .ratelimit import resolve_token
from .templating import mark_token_page

router = APIRouter()
_ROOM = re.compile(r"^[0-9a-f]{32}$")


@router.get("/room/{room_id}")
def room(request: Request, room_id: str, c=Depends(get_container)):
    def active(r: str) -> str | None:
        if not _ROOM.match(r):
            return None
        with c.session_factory() as db:
            found = db.execute(select(Meeting.id).where(Meeting.provider == "builtin", Meeting.external_id == r,
                                                        Meeting.status == "active")).first()
        return r if found else None

    resolve_token(request, active, room_id)
    return mark_token_page(RedirectResponse(f"{c.settings.jitsi_base_url}/sessionpack-room-{room_id}",
                                            status_code=307))
