"""SQLAlchemy 2 typed models, the unit of work and the migrations."""
from .base import Base, NoClock, UTCDateTime, clock_now, db_now
from .booking import ACTIVE_SESSION_STATES, Booking, Customer, Meeting, SagaStep, Session
from .catalog import BookingPage, EventType, Owner
from .intake import BookingRequest
from .integration import ApiKey, StripeEvent, WebhookDelivery
from .messaging import Activity, OutboxEmail, Reminder, TaskOutbox
from .money import LedgerEntry, Payment

__all__ = [
    "ACTIVE_SESSION_STATES", "Activity", "ApiKey", "Base", "Booking", "BookingPage", "BookingRequest", "Customer", "EventType",
    "LedgerEntry", "Meeting", "OutboxEmail", "Owner", "Payment", "Reminder", "SagaStep", "Session",
    "StripeEvent", "TaskOutbox", "UTCDateTime", "WebhookDelivery", "NoClock", "clock_now", "db_now",
]
