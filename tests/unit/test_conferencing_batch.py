"""create_meetings / delete_meetings against an in-memory provider: order, bounds, rollback."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from services.conferencing.base import ConferencingProvider, MeetingDetails, MeetingRequest
from services.conferencing.batch import create_meetings, delete_meetings
from services.errors import PermanentError, TransientError

START = datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc)


def package(n: int) -> list[MeetingRequest]:
    return [MeetingRequest(f"ss_{i}", f"Consultation, session {i} of {n}", START + timedelta(days=i), 60,
                           "America/New_York") for i in range(1, n + 1)]


class MemoryProvider(ConferencingProvider):
    """Keeps meetings in a dict; `fail` maps a session id to the error its create raises, and
    `made_anyway` lists sessions whose create fails after making the meeting (a lost answer)."""

    name = "memory"

    def __init__(self, fail: dict[str, Exception] | None = None, made_anyway: set[str] = frozenset(),
                 delay: float = 0.0, delete_fails: set[str] = frozenset()):
        self.fail = fail or {}
        self.made_anyway = made_anyway
        self.delay = delay
        self.delete_fails = delete_fails
        self.meetings: dict[str, str] = {}  # external id -> session id
        self.deleted: list[str] = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def create(self, request: MeetingRequest) -> MeetingDetails:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(self.delay)
            if request.session_id in self.fail and request.session_id not in self.made_anyway:
                raise self.fail[request.session_id]
            external_id = f"m-{request.session_id}"
            with self._lock:
                self.meetings[external_id] = request.session_id
            if request.session_id in self.fail:
                raise self.fail[request.session_id]
            return MeetingDetails(self.name, external_id, f"https://meet.example/{external_id}")
        finally:
            with self._lock:
                self.running -= 1

    def update(self, external_id, request):
        return None

    def delete(self, external_id: str) -> None:
        if external_id in self.delete_fails:
            raise TransientError("memory_unavailable", "down")
        with self._lock:
            self.deleted.append(external_id)
            self.meetings.pop(external_id, None)

    def find(self, request: MeetingRequest) -> MeetingDetails | None:
        for external_id, session_id in self.meetings.items():
            if session_id == request.session_id:
                return MeetingDetails(self.name, external_id, f"https://meet.example/{external_id}")
        return None


def test_ten_meetings_come_back_distinct_and_in_request_order_with_bounded_parallelism():
    provider = MemoryProvider(delay=0.01)
    made = create_meetings(provider, package(10), max_parallel=3)
    assert [m.external_id for m in made] == [f"m-ss_{i}" for i in range(1, 11)]
    assert len({m.join_url for m in made}) == 10
    assert 1 < provider.most_running <= 3


def test_a_failure_deletes_every_meeting_already_made_and_raises_that_error():
    refusal = PermanentError("memory_rejected", "session 7 refused")
    provider = MemoryProvider(fail={"ss_7": refusal}, delay=0.005)
    with pytest.raises(PermanentError) as caught:
        create_meetings(provider, package(10), max_parallel=2)
    assert caught.value is refusal
    assert provider.meetings == {}
    assert {f"m-ss_{i}" for i in range(1, 7)} <= set(provider.deleted)
    assert "m-ss_7" not in provider.deleted  # a refused create made nothing, so nothing is looked up


def test_a_transient_failure_whose_meeting_exists_anyway_is_found_and_deleted():
    provider = MemoryProvider(fail={"ss_3": TransientError("memory_timeout", "lost answer")}, made_anyway={"ss_3"})
    with pytest.raises(TransientError):
        create_meetings(provider, package(4), max_parallel=1)
    assert provider.meetings == {} and "m-ss_3" in provider.deleted


def test_a_failing_delete_during_rollback_does_not_hide_the_original_error():
    refusal = PermanentError("memory_rejected", "no")
    provider = MemoryProvider(fail={"ss_2": refusal}, delete_fails={"m-ss_1"})
    with pytest.raises(PermanentError) as caught:
        create_meetings(provider, package(2), max_parallel=1)
    assert caught.value is refusal


def test_an_empty_package_makes_nothing():
    assert create_meetings(MemoryProvider(), []) == []


def test_delete_meetings_tries_every_one_then_raises_the_first_failure():
    provider = MemoryProvider()
    made = create_meetings(provider, package(5))
    provider.delete_fails = {"m-ss_2"}
    with pytest.raises(TransientError):
        delete_meetings(provider, [m.external_id for m in made])
    assert set(provider.meetings) == {"m-ss_2"}
    provider.delete_fails = set()
    delete_meetings(provider, [m.external_id for m in made])  # again, as a retried task would
    assert provider.meetings == {}
