"""Session lifecycle and money after booking: cancel and reschedule sessions under the booking's
policies, manual refunds, and reconciliation of the ledger with Stripe.

Modules: `policy` (pure rules), `access` (tokens and admin), `changes` (a request as one
idempotent change), `ledger` (refunds and fees), `cancel` (and `withdraw`, a cancel of a request
awaiting approval), `reschedule` (and `abandon`, a reschedule that charged its fee but never moved
its session, refused and refunded), `manual`, `reconcile`.
The CLI calls the `preview_*` functions to refuse early and then enqueues the public task; the
tasks call the functions below, which check everything again and apply the change.
"""
from .abandon import give_up_reschedule, refund_orphaned_fees
from .access import authorize_sessions
from .cancel import cancel_sessions, finish_cancellation, preview_cancel
from .changes import FINISH_CANCELLATION, MOVE_MEETING, SEND_REFUNDS, Outcome, change_outcome, money_pending
from .ledger import money_position, send_refund, send_refunds
from .manual import preview_refund, refund_booking
from .reconcile import reconcile
from .reschedule import move_meeting, preview_reschedule, reschedule_session

__all__ = [
    "FINISH_CANCELLATION", "MOVE_MEETING", "SEND_REFUNDS", "Outcome", "authorize_sessions", "cancel_sessions", "change_outcome", "finish_cancellation",
    "give_up_reschedule", "money_pending", "money_position", "move_meeting", "preview_cancel", "preview_refund",
    "preview_reschedule", "reconcile", "refund_booking", "refund_orphaned_fees", "reschedule_session", "send_refund",
    "send_refunds",
]
