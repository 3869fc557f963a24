"""Outbox delivery over real SMTP (aiosmtpd on loopback): SMTP down, then up, every email once."""
import socket
from datetime import timedelta

from aiosmtpd.controller import Controller

from models import OutboxEmail
from services.booking import submit_booking
from services.notifications.outbox import deliver
from tests.support import apply_config, booking_request, daily_slots, package_config


class Collect:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_smtp_down_then_up_delivers_every_email_once(container, clock):
    port = free_port()
    container.settings = container.settings.replace(smtp_url=f"smtp://127.0.0.1:{port}")
    container.__dict__.pop("email_sender", None)
    apply_config(container, package_config(3))
    submit_booking(container, booking_request(daily_slots(clock() + timedelta(days=3), 3)))
    from tests.support import drain

    drain(container)  # delivery attempted while SMTP is down
    with container.session_factory() as db:
        rows = db.query(OutboxEmail).all()
        assert len(rows) == 2 and all(r.status == "pending" and r.attempts == 1 for r in rows)
        assert all("127.0.0.1" in (r.last_error or "") or r.last_error for r in rows)

    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert deliver(container)["sent"] == 0  # backoff: not yet due
        clock.advance(hours=2)
        assert deliver(container)["sent"] == 2
        assert deliver(container)["sent"] == 0  # a redelivered task sends nothing again
        clock.advance(hours=2)
        assert deliver(container)["sent"] == 0
    finally:
        controller.stop()
    assert len(handler.messages) == 2
    subjects = b"\n".join(handler.messages)
    assert b"multipart/alternative" in subjects and b"text/calendar" in subjects
