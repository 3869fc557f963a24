"""A worker SIGKILLed in the middle of the conferencing step, then a new one: one booking, one
meeting per session, nothing left behind at the provider."""
from __future__ import annotations

import time

import pytest

from tests.integration.conftest import first_day, write_json
from tests.peers.zoom import ZoomPeer
from tests.support import booking_request, daily_slots, package_config
from tests.worker_process import WorkerProcess, cli

pytestmark = pytest.mark.integration


def _wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_during_conferencing_then_restart(tmp_path, pg_redis_env):
    with ZoomPeer() as zoom:
        s = zoom.settings()
        env = dict(pg_redis_env)
        env.update(ZOOM_ACCOUNT_ID=s.zoom_account_id, ZOOM_CLIENT_ID=s.zoom_client_id,
                   ZOOM_CLIENT_SECRET=s.zoom_client_secret, ZOOM_API_BASE=s.zoom_api_base,
                   ZOOM_OAUTH_URL=s.zoom_oauth_url,
                   # a killed worker's task comes back quickly, and beat resumes stalled sagas
                   BROKER_VISIBILITY_TIMEOUT="5", SAGA_STALL_SECONDS="5")
        assert cli(env, "migrate")[0] == 0
        assert cli(env, "config", "apply", write_json(tmp_path, "c.json", package_config(10, provider="zoom")))[0] == 0

        creates = lambda r: r.method == "POST" and r.path.endswith("/meetings")  # noqa: E731
        zoom.slow_next(0.7, times=1000, match=creates)
        first = WorkerProcess(env, tmp_path / "worker1.log", name="w1").start()
        request = booking_request(daily_slots(first_day(), 10))
        code, queued, err = cli(env, "book", write_json(tmp_path, "r.json", request))
        assert code == 0, err
        _wait_until(lambda: len(zoom.calls("POST")) >= 4, 60, "meetings being created")
        first.kill()  # mid-step: some meetings made, some in flight, none recorded as a batch

        zoom.clear_faults()  # answer quickly from now on
        second = WorkerProcess(env, tmp_path / "worker2.log", name="w2", beat=True).start()
        try:
            shown = _wait_until(
                lambda: (lambda r: r[1] if r[1] and r[1].get("status") != "pending" else None)(cli(env, "show", queued["booking_id"])),
                120, "the booking to settle")
        finally:
            second.stop()

    assert shown["status"] == "confirmed", shown.get("failure")
    meeting_ids = [x["conferencing"]["meeting_id"] for x in shown["sessions"]]
    assert len(set(meeting_ids)) == 10
    # exactly the recorded meetings exist at the provider: no duplicate, no orphan
    assert sorted(zoom.meetings) == sorted(meeting_ids)
    actions = [a["action"] for a in shown["activity"]]
    assert actions.count("booking.confirmed") == 1 and actions.count("meeting.created") == 10
