"""One session's conferencing details: `/meeting/<info-token>` (a read-only token)."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException

router = APIRouter()


@router.get("/meeting/{token}")
def meeting_page(token: str):
    raise HTTPException(status_code=404)
