"""One session's conferencing details: `/meeting/<info-token>` (a read-only token: it shows the
meeting, it never changes anything)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from services.errors import ServiceError
from services.lifecycle.access import meeting_link
from services.lifecycle.preview import meeting_view
from services.notifications.render import provider_name

from .deps import get_container
from .ratelimit import open_link
from .templating import render

router = APIRouter()


@router.get("/meeting/{token}")
def meeting_page(request: Request, token: str, c=Depends(get_container)):
    session_id = open_link(request, c, token, meeting_link)
    try:
        page = meeting_view(c, session_id)
    except ServiceError:
        raise HTTPException(status_code=404) from None
    s = page.session
    return render(request, "meeting.html", {
        "b": page.booking, "s": s, "over": page.over, "tz": page.booking.customer_timezone,
        "in_person": page.provider == "none", "location": page.location,
        "provider": provider_name(s.meeting), "page_title": f"Session {s.number} · meeting details",
    }, token_page=True)
