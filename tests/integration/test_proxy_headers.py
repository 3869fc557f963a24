"""Behind a reverse proxy the rate limits count the client's address, not the proxy's: the
Procfile's web line believes X-Forwarded-For from FORWARDED_ALLOW_IPS only. Run as the Procfile
runs it, once with our loopback listed as the proxy and once not."""
from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import pytest

from tests.web_process import WebProcess, procfile_line
from tests.worker_process import BIN, PROJECT
from web.ratelimit import UNKNOWN_TOKENS

from .conftest import base_env

pytestmark = pytest.mark.integration


def _status(url: str, forwarded_for: str) -> int:
    request = urllib.request.Request(url, headers={"X-Forwarded-For": forwarded_for})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def web_behind(tmp_path):
    started = []

    def start(forwarded_allow_ips: str) -> WebProcess:
        env = {**base_env(tmp_path), "FORWARDED_ALLOW_IPS": forwarded_allow_ips}
        subprocess.run([str(BIN / "sessionpack"), "migrate"], env=env, cwd=PROJECT, check=True, capture_output=True)
        web = WebProcess(env, tmp_path / "web.log", procfile=True).start()
        started.append(web)
        return web

    yield start
    for web in started:
        web.stop()


def _exhaust(web: WebProcess, forwarded_for: str) -> None:
    for n in range(UNKNOWN_TOKENS.amount):
        assert _status(f"{web.url}/manage/forged-{n}", forwarded_for) == 404


def test_the_procfile_web_line_names_its_trusted_proxies():
    line = procfile_line("web")
    assert "--proxy-headers" in line and "FORWARDED_ALLOW_IPS" in line


def test_forwarded_for_from_a_trusted_proxy_is_the_client(web_behind):
    web = web_behind("127.0.0.1")  # our requests come from the listed proxy
    _exhaust(web, "203.0.113.1")
    assert _status(f"{web.url}/manage/forged-x", "203.0.113.1") == 429
    assert _status(f"{web.url}/manage/forged-y", "203.0.113.2") == 404  # another client behind the proxy


def test_forwarded_for_from_anyone_else_is_ignored(web_behind):
    web = web_behind("192.0.2.1")  # a proxy elsewhere: our loopback connections are not it
    _exhaust(web, "203.0.113.1")
    assert _status(f"{web.url}/manage/forged-y", "203.0.113.2") == 429  # the header changes nothing
