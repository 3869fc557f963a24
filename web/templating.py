"""Jinja2 for the pages: `templates/web/`, a base layout and partials, autoescaped, strict.

Pages never carry inline script (the Content-Security-Policy forbids it); styling comes from
`/static/site.css`.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.availability import to_utc_iso
from services.notifications.render import local_datetime, local_range, money, policy_lines, safe_url

WEB_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "web"
STATIC_DIR = WEB_TEMPLATES_DIR / "static"

templates = Jinja2Templates(directory=str(WEB_TEMPLATES_DIR))
templates.env.undefined = StrictUndefined
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def day_name(day: date) -> str:
    """'Monday 7 December 2026' (English, independent of the locale)."""
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def clock(moment: datetime, tz: str) -> str:
    """'14:30', the wall time in `tz`."""
    return f"{moment.astimezone(ZoneInfo(tz)):%H:%M}"


templates.env.filters.update(local_datetime=local_datetime, local_range=local_range, money=money,
                             safe_url=safe_url, day_name=day_name, clock=clock, utc_iso=to_utc_iso)
templates.env.globals.update(policy_lines=policy_lines)


def render(request: Request, name: str, context: dict | None = None, *, status_code: int = 200,
           token_page: bool = False):
    """A page from `templates/web/<name>`. `token_page` marks pages reached by a secret link:
    they are never cached and never leak their address in a Referer header."""
    from .csrf import csrf_token, set_csrf_cookie

    ctx = {"csrf_token": lambda: csrf_token(request), "page_title": None}
    ctx.update(context or {})
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    set_csrf_cookie(request, response)
    if token_page:
        mark_token_page(response)
    return response


def mark_token_page(response):
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
