"""The Procfile as an operator runs it: `honcho start` against PostgreSQL and Redis processes a
booking submitted from another shell."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from tests.worker_process import BIN, PROJECT

from .conftest import book_paid_package

pytestmark = pytest.mark.integration


@pytest.fixture
def honcho(tmp_path, pg_redis_env):
    """`honcho start worker beat` from the project's Procfile (Flower's fixed port is left to
    test_flower.py). It runs in an empty directory with no ./var (honcho starts processes in its
    own working directory), and SESSIONPACK_VAR_DIR moves the var dir to a path that does not
    exist yet: beat must make it and keep its schedule there."""
    out_path = tmp_path / "honcho.out"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # As in a shell with the virtualenv activated: the Procfile names `celery`, not a path.
    env = {**pg_redis_env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "SESSIONPACK_VAR_DIR": str(tmp_path / "moved" / "state")}
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([str(BIN / "honcho"), "-f", str(PROJECT / "Procfile"), "-d", str(run_dir),
                                 "start", "worker", "beat"],
                                cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in out_path.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, out_path.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield proc, out_path
    finally:
        if proc.poll() is None:
            proc.terminate()  # honcho stops its processes in turn
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_honcho_start_processes_a_booking_submitted_from_another_shell(tmp_path, pg_redis_env, honcho):
    proc, out_path = honcho
    _, booking = book_paid_package(pg_redis_env, tmp_path)
    assert booking["paid"] == "150.00"
    output = out_path.read_text(errors="replace")
    assert re.search(r"worker\.1\s+\| .*sessionpack\.capture_payment", output)
    assert re.search(r"beat\.1\s+\| ", output)
    assert proc.poll() is None, "every Procfile process keeps running"
    assert list((tmp_path / "moved" / "state").glob("celerybeat-schedule*")), "beat keeps its schedule in the var dir"
    assert not (tmp_path / "run" / "var").exists(), "nothing in the working directory's ./var"


def test_honcho_starts_the_web_line_on_port(tmp_path, pg_redis_env):
    """The Procfile's `web` line as honcho runs it (honcho gives it PORT): the pages answer there."""
    import urllib.error
    import urllib.request

    from tests.web_process import free_port

    port = free_port()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**pg_redis_env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PORT": str(port)}
    out_path = tmp_path / "honcho-web.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([str(BIN / "honcho"), "-f", str(PROJECT / "Procfile"), "-d", str(run_dir),
                                 "start", "web"], cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, out_path.read_text(errors="replace")
                time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/manage/ss_x.notatokennotatokennotatoken", timeout=5)
        assert unknown.value.code == 404
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
