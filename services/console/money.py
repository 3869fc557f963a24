"""Money at a glance: the ledger summed per booking page and month (captured, refunded, fees,
net), and the ledger itself as CSV. Both count what `reconcile` compares with Stripe: succeeded
movements (a pending refund is on its way and shown as such; a failed one never moved money).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from models import Booking, LedgerEntry

from ..availability import to_utc_iso
from ..money import format_amount
from .accounts import OwnerIdentity
from .scope import owner_pages

CSV_COLUMNS = ("entry_id", "created_at", "booking_id", "booking_page", "event_type", "session_id", "kind",
               "status", "amount", "signed_amount", "currency", "stripe_object_id", "target_id",
               "idempotency_key", "actor", "reason")


@dataclass
class MonthTotals:
    page: str
    month: str  # YYYY-MM in the reader's zone
    currency: str
    captured: int = 0
    fees: int = 0
    refunded: int = 0
    pending_refunds: int = 0

    @property
    def net(self) -> int:
        return self.captured + self.fees - self.refunded


def _ledger_query(owner: OwnerIdentity, since: datetime | None, until: datetime | None, page: str | None):
    query = (select(LedgerEntry, Booking.page_slug, Booking.event_type_slug)
             .join(Booking, Booking.id == LedgerEntry.booking_id))
    scope = owner_pages(owner)
    if scope is not None:
        query = query.where(Booking.page_slug.in_(scope))
    if page is not None:
        query = query.where(Booking.page_slug == page)
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    if until is not None:
        query = query.where(LedgerEntry.created_at < until)
    return query.order_by(LedgerEntry.id)


def money_by_month(db: Db, owner: OwnerIdentity, *, zone: str = "UTC", since: datetime | None = None,
                   until: datetime | None = None, page: str | None = None) -> list[MonthTotals]:
    """Per page, month (of the entry's creation, in `zone`) and currency, newest month first."""
    tz = ZoneInfo(zone)
    totals: dict[tuple[str, str, str], MonthTotals] = {}
    rows = db.execute(_ledger_query(owner, since, until, page).execution_options(yield_per=2000))
    for entry, page_slug, _event_type in rows:
        if entry.status not in ("succeeded", "pending"):
            continue
        if entry.status == "pending" and entry.kind != "refund":
            continue  # a capture or fee not yet taken is no money yet
        month = entry.created_at.astimezone(tz).strftime("%Y-%m")
        key = (page_slug or "", month, entry.currency)
        t = totals.get(key) or totals.setdefault(key, MonthTotals(page_slug or "", month, entry.currency))
        if entry.status == "pending":
            t.pending_refunds += entry.amount_cents
        elif entry.kind == "capture":
            t.captured += entry.amount_cents
        elif entry.kind == "fee":
            t.fees += entry.amount_cents
        elif entry.kind == "refund":
            t.refunded += entry.amount_cents
    return sorted(totals.values(), key=lambda t: (t.month, t.page, t.currency), reverse=True)


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (customer-supplied text)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def ledger_csv(db: Db, owner: OwnerIdentity, *, since: datetime | None = None, until: datetime | None = None,
               page: str | None = None) -> Iterator[str]:
    """The ledger, one movement a line (every status; sum the `succeeded` lines' signed amounts
    for the net), streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    rows = db.execute(_ledger_query(owner, since, until, page).execution_options(yield_per=2000))
    for n, (e, page_slug, event_type) in enumerate(rows, start=1):
        sign = -1 if e.kind == "refund" else 1
        writer.writerow([e.id, to_utc_iso(e.created_at), e.booking_id, page_slug or "", event_type or "",
                         e.session_id or "", e.kind, e.status, format_amount(e.amount_cents, e.currency),
                         format_amount(sign * e.amount_cents, e.currency), e.currency, e.stripe_object_id or "",
                         e.target_id or "", e.idempotency_key, _cell(e.actor), _cell(e.reason)])
        if n % 500 == 0:
            yield flush()
    yield flush()
