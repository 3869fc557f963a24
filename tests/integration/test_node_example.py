"""The Node.js frontend example (examples/): `npm ci`, then a booking enqueued with celery-node on
Redis is made by a real worker on PostgreSQL, and the example receiver verifies the signed
`booking.confirmed` webhook it gets (and refuses a forged one). Runs whenever the suite runs: the
npm registry is one of the registries this project's machines reach."""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from services import webhooks
from services.booking.ids import booking_id_for
from services.devtools.localstripe import free_port
from tests.integration.conftest import write_json
from tests.support import booking_request, daily_slots, package_config
from tests.worker_process import PROJECT, cli

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

EXAMPLES = PROJECT / "examples"
SECRET = "whsec_node_example_0123456789"


@pytest.fixture(scope="module")
def node_modules():
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed for the frontend example (apt-get install nodejs npm)"
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=EXAMPLES,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return node


class NodeReceiver:
    def __init__(self, node: str, env: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.proc = subprocess.Popen([node, "webhook-receiver.js"], cwd=EXAMPLES, text=True,
                                     env=dict(env, WEBHOOK_SECRET=SECRET, PORT=str(self.port)),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[dict] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("node receiver did not start: " + (self.proc.stderr.read() if self.proc.poll() else ""))

    def wait_for(self, predicate, timeout=90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.strip():
                    self.lines.append(json.loads(line))
                    if predicate(self.lines[-1]):
                        return self.lines[-1]
        raise AssertionError(f"no matching event from the node receiver; got {self.lines}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def test_node_frontend_enqueues_and_verifies_our_webhooks(node_modules, pg_redis_env, tmp_path, worker_factory):
    env = dict(pg_redis_env, COACH_WEBHOOK_SECRET=SECRET)
    receiver = NodeReceiver(node_modules, env)
    try:
        # A forged signature is refused by the example's verifier.
        body = json.dumps({"id": "evt_x", "type": "booking.confirmed", "created": "", "data": {}})
        forged = requests.post(receiver.url, data=body, timeout=5,
                               headers={webhooks.SIGNATURE_HEADER: webhooks.sign("not-the-secret", body)})
        assert forged.status_code == 400
        ours = requests.post(receiver.url, data=body, timeout=5,
                             headers={webhooks.SIGNATURE_HEADER: webhooks.sign(SECRET, body)})
        assert ours.status_code == 200 and receiver.wait_for(lambda e: e["id"] == "evt_x")

        assert cli(env, "migrate")[0] == 0
        cfg = package_config(1)
        cfg["booking_pages"][0]["webhooks"] = [{"url": receiver.url, "secret_env": "COACH_WEBHOOK_SECRET",
                                                "events": ["booking.confirmed", "booking.failed", "request.refused"]}]
        code, _, err = cli(env, "config", "apply", write_json(tmp_path, "config.json", cfg))
        assert code == 0, err
        worker_factory(env)

        for protocol in ("2", "1"):
            request = booking_request(daily_slots(datetime.now(timezone.utc) + timedelta(days=3 + int(protocol)), 1),
                                      request_id=f"node-example-v{protocol}")
            proc = subprocess.run([node_modules, "enqueue-booking.js", write_json(tmp_path, "request.json", request)],
                                  cwd=EXAMPLES, env=dict(env, CELERY_PROTOCOL=protocol), capture_output=True,
                                  text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
            sent = json.loads(proc.stdout.strip().splitlines()[-1])
            assert sent["booking_id"] == booking_id_for(request["request_id"])
            event = receiver.wait_for(lambda e: e["booking_id"] == sent["booking_id"])
            assert event["type"] == "booking.confirmed" and event["status"] == "confirmed"
    finally:
        receiver.stop()
