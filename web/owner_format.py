"""The owner console's template filters: times in the owner's zone, action names and a few words
from an activity entry's details. Registered on the shared Jinja environment when web/owner.py
is imported, so every console template can use them.
"""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from .templating import templates


def action_label(action: str) -> str:
    """'session.cancelled' -> 'Session cancelled'."""
    words = action.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def short_time(moment: datetime, zone: str) -> str:
    """'Mon 7 Dec 2026, 09:00' in the zone."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def day_label(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def clock(moment: datetime, zone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(zone)):%H:%M}"


def entry_summary(details: dict) -> str:
    """A few words from an entry's details (amounts, codes, reasons), never a token."""
    if not isinstance(details, dict):
        return ""
    parts = []
    for key in ("amount", "refund", "fee", "code", "reason", "from", "to", "sessions"):
        value = details.get(key)
        if value not in (None, "", [], {}):
            parts.append(f"{key} {value}"[:80])
    return ", ".join(parts)


def percent(value: float) -> str:
    """50.0 -> '50 %', 12.5 -> '12.5 %'."""
    return f"{value:g} %"


def _iso_utc(moment: datetime) -> str:
    from services.availability import to_utc_iso

    return to_utc_iso(moment)


templates.env.filters.update(action_label=action_label, short_time=short_time, day_label=day_label, clock=clock,
                             entry_summary=entry_summary, iso_utc=_iso_utc, percent=percent)
