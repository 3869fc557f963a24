"""Run a real localstripe server on a free loopback port, for integration tests.

    from tests.peers.localstripe_server import running_localstripe, reset

    @pytest.fixture(scope="module")
    def stripe_base():
        with running_localstripe() as base_url:   # e.g. "http://127.0.0.1:40123"
            yield base_url

    @pytest.fixture
    def stripe_peer(stripe_base):
        reset(stripe_base)                        # every test starts with an empty store
        return stripe_base

Point the adapter at it with `STRIPE_API_BASE=<base_url>` and any `sk_test_...` key. The server
itself is run by `services.devtools.localstripe`, which `sessionpack demo` uses too; see its
docstring for what to know about localstripe.
"""
from __future__ import annotations

import time

from services.devtools.localstripe import (  # noqa: F401  (the public API of this module)
    LocalstripeError,
    free_port,
    localstripe_executable,
    reset,
    running_localstripe,
)

if __name__ == "__main__":  # manual use: python -m tests.peers.localstripe_server
    with running_localstripe() as url:
        print(url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
