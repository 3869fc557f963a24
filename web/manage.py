"""The customer's cancel/reschedule page: `/manage/<token>` (the token is the authority)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from services.tokens import token_session_id

from .deps import get_container
from .ratelimit import resolve_token
from .templating import render

router = APIRouter()


@router.get("/manage/{token}")
def manage_page(request: Request, token: str, c=Depends(get_container)):
    session_id = resolve_token(request, lambda t: token_session_id(c.settings.secret_key, t), token)
    return render(request, "manage/page.html", {"session_id": session_id, "page_title": "Your sessions"},
                  token_page=True)
