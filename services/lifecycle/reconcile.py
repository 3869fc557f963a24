"""Reconciliation: the ledger against Stripe, booking by booking, every difference spelled out.

For each booking with a PaymentIntent: the ledger's succeeded capture against the package
intent's `amount_received`; each succeeded fee against its own intent; and the refunds on all
those intents against the ledger's succeeded refunds, by Stripe object id and amount. Money we
never recorded (a refund made in the Stripe dashboard, or one sent just before a crash whose
ledger row is still pending) and money recorded but absent at Stripe both show up.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from models import Booking, LedgerEntry, Payment

from ..errors import NotFound
from ..money import format_amount


@dataclass(frozen=True)
class _Row:
    kind: str
    status: str
    amount: int
    object_id: str | None
    key: str


class _Differences(list):
    """The differences of one booking, each a dict with a message saying what to look at."""

    def __init__(self, booking_id: str, currency: str):
        super().__init__()
        self.booking_id, self.currency = booking_id, currency

    def add(self, kind: str, stripe_object: str | None, ledger: int | None, stripe: int | None, message: str) -> None:
        money = (lambda cents: None if cents is None else format_amount(cents, self.currency))
        self.append({"booking_id": self.booking_id, "kind": kind, "stripe_object": stripe_object,
                     "ledger": money(ledger), "stripe": money(stripe), "currency": self.currency,
                     "message": message})


def _booking_rows(db, booking_ids: list[str]) -> dict[str, list[_Row]]:
    rows: dict[str, list[_Row]] = {b: [] for b in booking_ids}
    query = select(LedgerEntry).where(LedgerEntry.booking_id.in_(booking_ids)).order_by(LedgerEntry.id)
    for e in db.execute(query).scalars():
        rows[e.booking_id].append(_Row(e.kind, e.status, e.amount_cents, e.stripe_object_id, e.idempotency_key))
    return rows


def _check_intents(gateway, out: _Differences, package_intent: str, rows: list[_Row]) -> dict[str, dict]:
    """Compare what each intent took; returns every refund Stripe lists on them, by id."""
    captured = sum(r.amount for r in rows if r.kind == "capture" and r.status == "succeeded")
    summary = gateway.intent_summary(package_intent)
    received = int(summary.get("amount_received") or 0)
    if received != captured:
        out.add("capture_amount", package_intent, captured, received,
                f"the ledger has {format_amount(captured, out.currency)} captured on {package_intent}, Stripe "
                f"received {format_amount(received, out.currency)}")
    refunds = {r["id"]: r for r in summary.get("refunds", [])}
    for fee in (r for r in rows if r.kind == "fee" and r.status == "succeeded"):
        fee_summary = gateway.intent_summary(fee.object_id)
        fee_received = int(fee_summary.get("amount_received") or 0)
        if fee_summary.get("status") != "succeeded" or fee_received != fee.amount:
            out.add("fee_amount", fee.object_id, fee.amount, fee_received,
                    f"the ledger has a fee of {format_amount(fee.amount, out.currency)} on {fee.object_id}; Stripe "
                    f"says {fee_summary.get('status')} with {format_amount(fee_received, out.currency)} received")
        refunds.update({r["id"]: r for r in fee_summary.get("refunds", [])})
    return refunds


def _check_refunds(out: _Differences, rows: list[_Row], stripe_refunds: dict[str, dict]) -> None:
    ours = {r.object_id: r for r in rows if r.kind == "refund" and r.status == "succeeded"}
    pending = sum(1 for r in rows if r.kind == "refund" and r.status == "pending")
    for refund_id, refund in stripe_refunds.items():
        amount, status = int(refund["amount"]), refund.get("status")
        if status in ("failed", "canceled"):
            if refund_id in ours:
                out.add("refund_failed_at_stripe", refund_id, ours[refund_id].amount, 0,
                        f"the ledger counts refund {refund_id} as succeeded; Stripe says {status}")
            continue
        if refund_id not in ours:
            hint = (f" ({pending} refund(s) of ours are still pending: the refund task records them when it runs)"
                    if pending else "; it was made outside sessionpack (e.g. in the Stripe dashboard)")
            out.add("refund_not_in_ledger", refund_id, None, amount,
                    f"Stripe has refund {refund_id} of {format_amount(amount, out.currency)} that the ledger does "
                    f"not record{hint}")
        elif ours[refund_id].amount != amount:
            out.add("refund_amount", refund_id, ours[refund_id].amount, amount,
                    f"refund {refund_id} is {format_amount(ours[refund_id].amount, out.currency)} in the ledger and "
                    f"{format_amount(amount, out.currency)} at Stripe")
    for refund_id, row in ours.items():
        if refund_id not in stripe_refunds:
            out.add("refund_not_in_stripe", refund_id, row.amount, None,
                    f"the ledger records refund {refund_id} of {format_amount(row.amount, out.currency)} "
                    f"(key {row.key}) but Stripe lists no such refund on the booking's intents")


def reconcile(c, booking_id: str | None = None) -> dict:
    """Compare the ledger with Stripe for every booking that has a PaymentIntent (or one).

    Returns {"ok": bool, "bookings": n, "differences": [{"booking_id", "kind", "stripe_object",
    "ledger", "stripe", "currency", "message"}]}; `ok` is True only when nothing differs.
    """
    with c.read() as db:
        if booking_id is not None and db.get(Booking, booking_id) is None:
            raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist; check the id")
        query = select(Payment.booking_id, Payment.intent_id, Payment.currency).where(Payment.intent_id.is_not(None))
        if booking_id is not None:
            query = query.where(Payment.booking_id == booking_id)
        payments = list(db.execute(query.order_by(Payment.id)).all())
        rows = _booking_rows(db, [p.booking_id for p in payments])
    differences: list[dict] = []
    for bid, intent_id, currency in payments:
        out = _Differences(bid, currency)
        stripe_refunds = _check_intents(c.payments, out, intent_id, rows[bid])
        _check_refunds(out, rows[bid], stripe_refunds)
        differences.extend(out)
    return {"ok": not differences, "bookings": len(payments), "differences": differences}
