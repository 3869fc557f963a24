"""The orphan-meeting sweep (services/conferencing/reconcile.py) against the loopback Zoom, Webex
and GoTo: each adapter's `tagged_meetings`, then the sweep over real bookings made in-process on
SQLite, with a late-landing create played by creating the session's meeting once more by hand."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from models import Activity, Booking, Meeting, SagaStep
from services.conferencing import meeting_request
from services.conferencing.base import ConferencingProvider, MeetingRequest
from services.conferencing.goto import GoToMeetingProvider
from services.conferencing.reconcile import sweep_orphan_meetings
from services.conferencing.webex import WebexProvider
from services.conferencing.zoom import ZoomProvider
from tests.peers import FAST_RETRY
from tests.peers.goto import GoToPeer
from tests.peers.http_peer import HttpPeer, Recorded
from tests.peers.webex import WebexPeer
from tests.peers.zoom import ZoomPeer
from tests.reliability.harness import LiveClock, run_tasks, submit
from tests.reliability.invariants import check_invariants
from tests.support import apply_config, booking_request, daily_slots, package_config

pytestmark = pytest.mark.integration

PEERS = {"zoom": (ZoomPeer, ZoomProvider), "webex": (WebexPeer, WebexProvider),
         "gotomeeting": (GoToPeer, GoToMeetingProvider)}
N = 2  # sessions per booking; the sweep's grace is its default, 10 minutes, and its window 24 hours


def creates(r: Recorded) -> bool:
    return r.method == "POST" and r.path.endswith("/meetings")


def deletes(r: Recorded) -> bool:
    return r.method == "DELETE"


def listings(r: Recorded) -> bool:
    """Zoom's and Webex's GET .../meetings and GoTo's GET .../upcomingMeetings."""
    return r.method == "GET" and r.path.lower().endswith("meetings")


# -- the adapters: every meeting carrying a session's mark -----------------------------------------

def _request(session_id: str, day: int, topic: str) -> MeetingRequest:
    return MeetingRequest(session_id, topic, datetime(2026, 12, day, 14, 0, tzinfo=timezone.utc), 60,
                          "America/New_York")


@pytest.fixture(params=sorted(PEERS))
def adapter(request):
    peer_class, provider_class = PEERS[request.param]
    with peer_class() as peer:
        yield peer, provider_class(peer.settings(), retry=FAST_RETRY)


def test_tagged_meetings_lists_every_meeting_of_the_sessions_asked_for(adapter):
    peer, provider = adapter
    a, b, c = (_request("ss_a", 7, "Coaching 1 of 3"), _request("ss_b", 8, "Coaching 2 of 3"),
               _request("ss_c", 9, "Coaching 3 of 3"))
    a1, a2, b1 = (provider.create(r).external_id for r in (a, a, b))
    provider.create(c)  # not asked for
    assert provider.tagged_meetings([a, b]) == {"ss_a": [a1, a2], "ss_b": [b1]}
    assert provider.tagged_meetings([_request("ss_none", 10, "Coaching 1 of 1")]) == {}


def test_zoom_walks_every_page_of_scheduled_meetings():
    with ZoomPeer() as peer:
        peer.max_page_size = 2
        zoom = ZoomProvider(peer.settings(), retry=FAST_RETRY)
        requests = [_request(f"ss_{i}", 7 + i, f"Coaching {i}") for i in range(5)]
        made = [zoom.create(r).external_id for r in requests]
        assert zoom.tagged_meetings(requests[3:]) == {"ss_3": [made[3]], "ss_4": [made[4]]}
        pages = peer.calls("GET", "/v2/users/me/meetings")
        assert len(pages) == 3 and {p.query["type"] for p in pages} == {"scheduled"}


# -- the sweep over real bookings --------------------------------------------------------------------

@dataclass
class Rig:
    name: str
    peer: HttpPeer
    c: object
    clock: LiveClock

    @property
    def provider(self) -> ConferencingProvider:
        return self.c.conferencing[self.name]

    def book(self, days: int = 3) -> str:
        req = booking_request(daily_slots(self.clock() + timedelta(days=days), N))
        booking_id = submit(self.c, req)
        run_tasks(self.c)
        return booking_id

    def troubled_booking(self, days: int = 3) -> str:
        """A confirmed booking whose conferencing step ran twice: one create failed (503), the
        step rolled back and retried."""
        self.peer.fail_next(503, match=creates)
        booking_id = self.book(days)
        assert self.status(booking_id) == "confirmed" and self.attempts(booking_id) == 2
        return booking_id

    def land_late(self, booking_id: str, number: int = 1) -> str:
        """The meeting a timed-out create of session `number` makes when it lands after the retry."""
        with self.c.session_factory() as db:
            booking = db.get(Booking, booking_id)
            session = next(s for s in booking.sessions if s.number == number)
            request = meeting_request(booking, session)
        return self.provider.create(request).external_id

    def status(self, booking_id: str) -> str:
        with self.c.session_factory() as db:
            return db.get(Booking, booking_id).status

    def attempts(self, booking_id: str) -> int:
        with self.c.session_factory() as db:
            return db.get(SagaStep, (booking_id, "conferencing")).attempts

    def ours(self) -> set[str]:
        with self.c.session_factory() as db:
            return set(db.execute(select(Meeting.external_id).where(Meeting.status == "active")).scalars())

    def swept(self, booking_id: str) -> list[dict]:
        with self.c.session_factory() as db:
            return [a.details for a in db.execute(select(Activity).where(
                Activity.booking_id == booking_id, Activity.action == "meeting.orphan_deleted")).scalars()]

    def problems(self) -> list[str]:
        return check_invariants(self.c, provider_peer=self.peer)


@pytest.fixture(params=sorted(PEERS))
def rig(request, tmp_path):
    from models.db import migrate
    from tests.conftest import make_settings
    from core.wiring import build_container

    peer_class, _ = PEERS[request.param]
    with peer_class() as peer:
        base = make_settings(tmp_path, f"sqlite:///{tmp_path / 'var' / 'sweep.db'}")
        # One try per call: a single injected 503 fails the call, as its retries running out would.
        settings = peer.settings(**{k: getattr(base, k) for k in (
            "var_dir", "database_url", "broker_url", "secret_key", "public_base_url")},
            extra={"http_retry": {"attempts": 1, "base_delay": 0.01, "max_delay": 0.02}})
        clock = LiveClock()
        c = build_container(settings, clock=clock)
        migrate(c.engine)
        apply_config(c, package_config(N, provider=request.param))
        yield Rig(request.param, peer, c, clock)
        c.engine.dispose()


def test_the_orphan_is_deleted_and_our_meetings_are_kept(rig):
    booking_id = rig.troubled_booking()
    orphan = rig.land_late(booking_id)
    assert orphan not in rig.ours() and len(rig.peer.meetings) == N + 1
    rig.clock.advance(minutes=11)
    report = sweep_orphan_meetings(rig.c)
    assert report == {"bookings": 1, "sessions": N, "kept": N, "deleted": 1, "delete_failed": 0, "list_failed": 0}
    assert set(rig.peer.meetings) == rig.ours() and len(rig.ours()) == N
    assert rig.problems() == []
    (entry,) = rig.swept(booking_id)
    assert entry["meeting_id"] == orphan and entry["provider"] == rig.name
    # Idempotent: the next tick lists again, finds only ours and deletes nothing.
    before = len(rig.peer.calls())
    assert sweep_orphan_meetings(rig.c)["deleted"] == 0
    assert not [r for r in rig.peer.calls()[before:] if deletes(r)]


def test_nothing_is_done_inside_the_grace_period(rig):
    booking_id = rig.troubled_booking()
    orphan = rig.land_late(booking_id)
    before = len(rig.peer.calls())
    rig.clock.advance(minutes=9)
    assert sweep_orphan_meetings(rig.c)["bookings"] == 0
    assert rig.peer.calls()[before:] == [] and orphan in rig.peer.meetings  # the provider was not even asked
    rig.clock.advance(minutes=2)
    assert sweep_orphan_meetings(rig.c)["deleted"] == 1 and orphan not in rig.peer.meetings


def test_nothing_is_done_after_the_window(rig):
    booking_id = rig.troubled_booking()
    rig.land_late(booking_id)
    before = len(rig.peer.calls())
    rig.clock.advance(hours=25)
    assert sweep_orphan_meetings(rig.c)["bookings"] == 0 and rig.peer.calls()[before:] == []


def test_a_meeting_already_gone_counts_as_deleted(rig, monkeypatch):
    booking_id = rig.troubled_booking()
    orphan = rig.land_late(booking_id)
    listed = rig.provider.tagged_meetings

    def listed_then_deleted_by_hand(requests):
        found = listed(requests)
        rig.peer.meetings.pop(orphan)  # someone deletes it at the provider meanwhile
        return found

    monkeypatch.setattr(rig.provider, "tagged_meetings", listed_then_deleted_by_hand)
    rig.clock.advance(minutes=11)
    before = len(rig.peer.calls())
    report = sweep_orphan_meetings(rig.c)
    (delete,) = [r for r in rig.peer.calls()[before:] if deletes(r)]
    assert orphan in delete.path  # answered 404 by the peer's own store
    assert (report["deleted"], report["delete_failed"]) == (1, 0)
    assert [e["meeting_id"] for e in rig.swept(booking_id)] == [orphan] and rig.problems() == []


@pytest.mark.parametrize("failing", ["listing", "delete"])
def test_a_transient_failure_leaves_the_orphan_for_the_next_tick(rig, failing):
    booking_id = rig.troubled_booking()
    orphan = rig.land_late(booking_id)
    rig.clock.advance(minutes=11)
    rig.peer.fail_next(503, match=listings if failing == "listing" else deletes)
    report = sweep_orphan_meetings(rig.c)
    assert report["deleted"] == 0 and orphan in rig.peer.meetings and rig.swept(booking_id) == []
    assert (report["list_failed"], report["delete_failed"]) == ((N, 0) if failing == "listing" else (0, 1))
    rig.clock.advance(minutes=5)  # the next tick
    assert sweep_orphan_meetings(rig.c)["deleted"] == 1
    assert orphan not in rig.peer.meetings and rig.problems() == []


def test_a_booking_that_failed_at_conferencing_loses_every_tagged_meeting(rig):
    rig.peer.fail_next(400, match=creates)  # one create refused for good: the step ran once and failed
    booking_id = rig.book()
    assert rig.status(booking_id) == "failed" and rig.attempts(booking_id) == 1
    orphan = rig.land_late(booking_id, number=2)  # a create the rollback did not see land
    rig.clock.advance(minutes=11)
    report = sweep_orphan_meetings(rig.c)
    assert (report["deleted"], report["kept"]) == (1, 0) and rig.peer.meetings == {}
    assert [e["meeting_id"] for e in rig.swept(booking_id)] == [orphan] and rig.problems() == []


def test_a_clean_booking_costs_no_provider_call(rig):
    booking_id = rig.book()
    assert rig.status(booking_id) == "confirmed" and rig.attempts(booking_id) == 1
    before = len(rig.peer.calls())
    rig.clock.advance(minutes=11)
    assert sweep_orphan_meetings(rig.c)["bookings"] == 0 and rig.peer.calls()[before:] == []


def test_each_tick_sweeps_a_bounded_number_of_bookings_newest_first(rig):
    older = rig.troubled_booking(days=3)
    older_orphan = rig.land_late(older)
    newer = rig.troubled_booking(days=6)
    newer_orphan = rig.land_late(newer)
    rig.clock.advance(minutes=11)
    assert sweep_orphan_meetings(rig.c, limit=1)["bookings"] == 1
    assert newer_orphan not in rig.peer.meetings and older_orphan in rig.peer.meetings
    assert sweep_orphan_meetings(rig.c, limit=2)["deleted"] == 1 and rig.problems() == []
