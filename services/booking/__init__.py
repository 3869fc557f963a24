"""The booking workflow: request validation, the hold, the saga steps and their compensations.

By phase: `submit` (validate and hold), `steps` (authorize, conferencing, capture), `confirm`
(the pivot), `at_once` (hold, meetings and pivot in one transaction when no step calls out), `compensate` (failure and undo), `approval` (manual mode), `resume` (stalled
bookings), sharing `saga` (step order, saga log). `request`, `ids` and `views` are the request's
rules, the identifiers and the booking object. Dependencies point one way: booking uses
conferencing, notifications and calendar; none of them imports booking.
"""
from .approval import approve_booking, decline_booking, expire_approval_requests, load_awaiting
from .compensate import compensate_booking, fail_booking
from .confirm import confirm_booking
from .resume import resume_stalled
from .saga import TASK_FOR_STEP
from .steps import authorize_payment, capture_payment, provision_conferencing
from .submit import record_rejected, start_booking, submit_booking

__all__ = [
    "TASK_FOR_STEP", "approve_booking", "authorize_payment", "capture_payment", "compensate_booking",
    "confirm_booking", "decline_booking", "expire_approval_requests", "fail_booking", "load_awaiting",
    "provision_conferencing", "record_rejected", "resume_stalled", "start_booking", "submit_booking",
]
