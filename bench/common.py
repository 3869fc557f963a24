"""What every benchmark shares: a fresh PostgreSQL database and a Redis database of its own, real
Celery workers, the measuring loops, and the report (aligned text on stdout, JSON in bench/results/).

Everything runs on loopback. A `Bench` cleans up after itself: workers stopped, database dropped,
Redis database flushed, temporary directory removed, even when the benchmark fails.

The environment is set in this process *before* anything from `worker` is imported, because
`worker.app` builds its Celery app from the environment at import time.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

from tests.worker_process import WorkerProcess

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis databases of the benchmarks (the tests use 11 and 12). Benchmarks that share a number
# must not run at the same time; `Bench` refuses to start when another live run holds it.
REDIS_DB = {"throughput": 13, "scaleout": 13, "latency": 14, "growth": 15, "bare_chain": 10}
MARKER = "sessionpack-bench-owner"

if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the environment --------------------------------------------------------------------------------



def send_noop_chains(app, task: str, n: int, length: int, mark: str) -> None:
    """Publish n chains of `length` immutable calls of the no-op `task`; the last of each gets
    `mark`, the Redis counter it increments when it runs."""
    from celery import chain

    with app.producer_or_acquire() as producer:
        for _ in range(n):
            sigs = [app.signature(task, immutable=True) for _ in range(length - 1)]
            sigs.append(app.signature(task, kwargs={"mark": mark}, immutable=True))
            chain(*sigs, app=app).apply_async(producer=producer)

class Bench:
    """A fresh database (migrated) + a flushed Redis database + the env of a real worker."""

    def __init__(self, name: str, *, redis_db: int | None = None, broker: bool = True):
        import redis

        from tests.support import PostgresDatabase

        self.name = name
        self.workers: list[Worker] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"sp-bench-{name}-"))
        self.redis_db = REDIS_DB.get(name, 15) if redis_db is None else redis_db
        self.redis = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db) if broker else None
        if self.redis is not None:
            owner = self.redis.get(MARKER)
            if owner and _pid_alive(int(owner)):
                raise SystemExit(f"Redis db {self.redis_db} is in use by bench run pid {int(owner)}; wait for it")
            self.redis.flushdb()
            self.redis.set(MARKER, os.getpid())
        self.pg = PostgresDatabase()
        self.broker_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DATABASE_URL", "BROKER_URL", "STRIPE_", "SMTP_", "ZOOM_", "WEBEX_", "GOTO_"))}
        self.env.update(
            SESSIONPACK_VAR_DIR=str(self.tmp / "var"), SECRET_KEY="bench-secret-key-0123456789abcdef",
            PUBLIC_BASE_URL="https://book.example.com", PYTHONUNBUFFERED="1",
            DATABASE_URL=self.pg.url, BROKER_URL=self.broker_url,
        )
        os.environ.update({k: self.env[k] for k in ("SESSIONPACK_VAR_DIR", "SECRET_KEY", "PUBLIC_BASE_URL",
                                                    "DATABASE_URL", "BROKER_URL")})
        for k in [k for k in os.environ if k.startswith(("STRIPE_", "SMTP_", "ZOOM_", "WEBEX_", "GOTO_"))]:
            del os.environ[k]
        self._container = None
        self.engine = None
        # `timeout` and kill send SIGTERM: turn it into an exit so that the cleanup still runs.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            from models.db import make_engine, migrate

            self.engine = make_engine(self.pg.url)
            migrate(self.engine)
        except BaseException:
            self.close()
            raise

    # context manager: always clean up
    def __enter__(self) -> "Bench":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []
        if self._container is not None and "engine" in self._container.__dict__:
            self._container.engine.dispose()
        if self.engine is not None:
            self.engine.dispose()
        try:
            self.pg.drop()
        finally:
            if self.redis is not None:
                self.redis.flushdb()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- in-process services ------------------------------------------------------------------------
    @property
    def container(self):
        """A container of this process (for config and direct service calls), with the Celery app."""
        if self._container is None:
            from core.settings import Settings
            from core.wiring import build_container

            app = self.app if self.redis is not None else None
            self._container = build_container(Settings(), celery_app=app)
        return self._container

    @property
    def app(self):
        from worker.app import app

        import bench.noop_tasks  # noqa: F401  (registers bench.noop on the app, for chains)
        return app

    def apply_config(self, config: dict) -> None:
        from services.config import apply_config

        c = self.container
        with c.uow() as uow:
            apply_config(uow, config)
            uow.commit()

    def sql(self, statement: str, **params):
        from sqlalchemy import text

        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.fetchall() if result.returns_rows else result.rowcount

    def scalar(self, statement: str, **params):
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text(statement), params).scalar()

    # -- workers ------------------------------------------------------------------------------------
    def start_worker(self, concurrency: int = 2, name: str = "w1") -> "Worker":
        w = Worker(self.env, self.tmp / f"worker-{name}.log", concurrency=concurrency, name=name).start()
        self.workers.append(w)
        return w

    def stop_workers(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []

    # -- measuring loops ----------------------------------------------------------------------------
    def run_bookings(self, requests: list[dict], *, timeout: float = 150.0, poll: float = 0.02) -> dict:
        """Enqueue every request at once (saturating the workers) and wait until all are confirmed.
        Returns wall seconds from the first send to the last confirmation seen."""
        app = self.app
        base_confirmed = self.scalar("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
        base_failed = self.scalar("SELECT count(*) FROM bookings WHERE status = 'failed'")
        n = len(requests)
        t0 = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for r in requests:
                app.send_task("sessionpack.submit_booking", args=[r], producer=producer)
        sent = time.perf_counter() - t0
        deadline = t0 + timeout
        while True:
            done = self.scalar("SELECT count(*) FROM bookings WHERE status = 'confirmed'") - base_confirmed
            if done >= n:
                break
            failed = self.scalar("SELECT count(*) FROM bookings WHERE status = 'failed'") - base_failed
            if failed:
                why = self.sql("SELECT failure FROM bookings WHERE status = 'failed' LIMIT 1")
                raise RuntimeError(f"{failed} booking(s) failed during the benchmark: {why}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {done} of {n} bookings confirmed after {timeout}s")
            time.sleep(poll)
        elapsed = time.perf_counter() - t0
        return {"n": n, "seconds": elapsed, "per_second": n / elapsed, "enqueue_seconds": sent}

    def run_chains(self, n: int, length: int, *, timeout: float = 150.0, poll: float = 0.02) -> dict:
        """Send n bare chains of `length` no-op tasks at once; wait until every last task ran."""
        key = f"bench:chains:{time.time_ns()}"
        t0 = time.perf_counter()
        send_noop_chains(self.app, "bench.noop", n, length, key)
        sent = time.perf_counter() - t0
        deadline = t0 + timeout
        while int(self.redis.get(key) or 0) < n:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {int(self.redis.get(key) or 0)} of {n} chains done after {timeout}s")
            time.sleep(poll)
        elapsed = time.perf_counter() - t0
        return {"n": n, "length": length, "seconds": elapsed, "per_second": n / elapsed, "enqueue_seconds": sent}

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until the broker queue is empty and no task outbox row is pending (the tail of the
        previous phase: emails being sent)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queued = self.redis.llen("celery")
            pending = self.scalar("SELECT count(*) FROM task_outbox WHERE dispatched_at IS NULL")
            emails = self.scalar("SELECT count(*) FROM outbox_emails WHERE status IN ('pending', 'sending')")
            if not queued and not pending and not emails:
                time.sleep(0.3)  # the task that took the last message may still be running
                return
            time.sleep(0.1)
        log("warning: the queue did not drain before the next phase")


def _exit_on_sigterm(signum, frame) -> None:  # noqa: ANN001
    raise SystemExit(128 + signum)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


# -- a real worker ----------------------------------------------------------------------------------


class Worker(WorkerProcess):
    """`celery -A worker worker` as the Procfile runs it (prefork, -E), plus the bench no-op tasks."""

    def __init__(self, env: dict, log_path: Path, concurrency: int = 2, name: str = "w1"):
        super().__init__(env, log_path, concurrency=concurrency, name=f"bench-{name}",
                         extra_args=("-I", "bench.noop_tasks"))

    def mark(self) -> int:
        """A position in the log; `task_runtimes(since=mark)` reads only what came after."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def task_runtimes(self, since: int = 0) -> dict[str, list[float]]:
        """Runtime of every task that succeeded since the mark, by task name (from Celery's own
        'Task NAME[id] succeeded in Xs' lines)."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        out: dict[str, list[float]] = defaultdict(list)
        for name, secs in re.findall(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([0-9.]+)s", text):
            out[name].append(float(secs))
        return dict(out)

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]


def summarize_runtimes(runtimes: dict[str, list[float]], per: int | None = None) -> list[dict]:
    """Per task name: count, mean ms, total s (and count per booking when `per` is given)."""
    rows = []
    for name, values in sorted(runtimes.items(), key=lambda kv: -sum(kv[1])):
        row = {"task": name, "count": len(values), "mean_ms": 1000 * statistics.fmean(values),
               "total_s": sum(values)}
        if per:
            row["per_booking"] = len(values) / per
        rows.append(row)
    return rows


class Profiler:
    """py-spy record over a worker and its pool processes for the duration of a phase; writes a
    raw (collapsed stacks) file and summarises the hottest frames of the project."""

    def __init__(self, worker: Worker, out: Path, rate: int = 200):
        self.worker, self.out, self.rate = worker, out, rate
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Profiler":
        spy = BIN / "py-spy"
        if not spy.exists():
            raise SystemExit("py-spy is not installed in the venv: .venv/bin/pip install py-spy")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(spy), "record", "--pid", str(self.worker.proc.pid), "--subprocesses",
                                      "--rate", str(self.rate), "--format", "raw", "--output", str(self.out),
                                      "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def profile_summary(raw: Path, top: int = 25, own: tuple = ("services/", "models/", "tasks/", "worker/")) -> dict:
    """From py-spy's collapsed stacks, over the samples of pool processes running a task (stacks
    through Celery's trace_task): the share of samples whose innermost frame is in each library
    (self time), and the share where each project function is on the stack (inclusive)."""
    if not raw.exists():
        return {"samples": 0}
    total = 0
    inclusive: dict[str, int] = defaultdict(int)
    self_time: dict[str, int] = defaultdict(int)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        if "trace_task" not in stack:
            continue
        total += n
        frames = [m.groups() for f in stack.split(";") if (m := re.match(r"(.+?) \((.+?):\d+\)", f))]
        seen = set()
        for func, path in frames:
            if "site-packages" not in path and any(p in path for p in own):
                key = f"{func} ({_short(path)})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += n
        if frames:
            self_time[_library(frames[-1][1])] += n
    hot = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    libs = sorted(self_time.items(), key=lambda kv: -kv[1])
    return {
        "samples_in_tasks": total,
        "own_inclusive": [{"frame": k, "share": v / total} for k, v in hot] if total else [],
        "self_by_library": [{"library": k, "share": v / total} for k, v in libs] if total else [],
    }


def _library(path: str) -> str:
    """py-spy prints paths relative to sys.path: the first component names the library."""
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[1]
    first = path.split("/", 1)[0].removesuffix(".py")
    return f"project: {first}" if first in ("services", "models", "tasks", "worker", "bench") else first


def _short(path: str) -> str:
    p = path.split("/work/main/")[-1]
    return p


# -- data -------------------------------------------------------------------------------------------


def first_day() -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=3)


def package_requests(n_bookings: int, sessions: int, *, start_block: int = 0, event_type: str = "pkg",
                     tag: str = "b", page: str = "coach") -> list[dict]:
    """n booking requests of `sessions` sessions each that never overlap one another: booking i
    takes the hour 08+i%12 on `sessions` consecutive days of its own block of days."""
    from tests.support import booking_request, daily_slots

    day0 = first_day()
    out = []
    for i in range(n_bookings):
        block = start_block + i // 12
        hhmm = f"{8 + i % 12:02d}:00"
        slots = daily_slots(day0 + timedelta(days=block * sessions), sessions, hhmm)
        out.append(booking_request(slots, request_id=f"{tag}-{block}-{i % 12}-{os.getpid()}",
                                   event_type=event_type, email=f"c{block}x{i % 12}@example.org",
                                   name=f"Customer {block}-{i % 12}"))
        out[-1]["booking_page"] = page
    return out


def pages_config(sizes: dict[str, int]) -> dict:
    """One owner and one booking page per entry (slug -> sessions per booking), each built like
    tests.support.package_config (builtin conferencing, no price, open 08:00-20:00 every day)."""
    from tests.support import package_config

    owners, pages = [], []
    for slug, n in sizes.items():
        cfg = package_config(n)
        owner, page = cfg["owners"][0], cfg["booking_pages"][0]
        owner.update(id=f"o-{slug}", email=f"{slug}@example.com")
        page.update(slug=slug, owner=owner["id"])
        owners.append(owner)
        pages.append(page)
    return {"owners": owners, "booking_pages": pages}


# -- the report ---------------------------------------------------------------------------------------


def machine() -> dict:
    import celery
    import sqlalchemy

    pg = None
    try:
        pg = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-c", "SHOW server_version"],
                            capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "python": platform.python_version(), "celery": celery.__version__,
        "sqlalchemy": sqlalchemy.__version__, "postgresql": pg, "loadavg_at_start": os.getloadavg(),
    }


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows of dicts as aligned text."""
    if not rows:
        return ""
    columns = columns or list(rows[0])

    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    for row in cells:
        lines.append("  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths)))
    return "\n".join(lines)


def _numeric(v: str) -> bool:
    return bool(re.fullmatch(r"-?[0-9.,x%]+", v))


def report(name: str, headline: list[tuple[str, object]], data: dict, tables: Iterable[tuple[str, list[dict]]] = ()) -> Path:
    """Print the headline figures aligned, then any tables; write everything to bench/results/NAME.json."""
    width = max(len(k) for k, _ in headline) if headline else 0
    print(f"\n== {name} ==")
    for k, v in headline:
        if isinstance(v, float):
            v = f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        print(f"{k.ljust(width)}  {v}")
    for title, rows in tables:
        print(f"\n{title}")
        print(table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "machine": data.pop("machine", None) or machine(), **data,
            "loadavg_at_end": os.getloadavg()}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"\n(written to {path.relative_to(PROJECT)})")
    return path


def timed(fn: Callable, repeat: int = 5, warmup: int = 1) -> dict:
    """Median, min and max wall seconds of `fn()` over `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    values = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        values.append(time.perf_counter() - t)
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


# -- bulk rows --------------------------------------------------------------------------------------


def copy_rows(engine, table: str, columns: list[str], rows: Iterable[tuple]) -> int:
    """COPY rows into a table through psycopg (fast; every constraint and index still applies)."""
    raw = engine.raw_connection()
    n = 0
    try:
        with raw.driver_connection.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
        raw.driver_connection.commit()
    finally:
        raw.close()
    return n


BOOKING_COLUMNS = ["id", "request_id", "status", "saga_step", "page_slug", "owner_id", "customer_name",
                   "customer_email", "customer_timezone", "price_cents", "currency", "terms", "created_at",
                   "updated_at"]
SESSION_COLUMNS = ["id", "booking_id", "number", "owner_id", "status", "start_at", "end_at", "block_start",
                   "block_end", "relative_cost_cents", "uid", "sequence", "updated_at"]


def seed_sessions(engine, owner_id: str, page_slug: str, intervals: list[tuple[datetime, datetime]], *,
                  per_booking: int = 10, tag: str = "seed", status: str = "confirmed") -> list[str]:
    """Confirmed bookings of `per_booking` sessions over the given (start, end) intervals, by COPY.
    Returns the session ids in the order of `intervals`."""
    now = datetime.now(timezone.utc)
    bookings, sessions, ids = [], [], []
    for i, (start, end) in enumerate(intervals):
        b = i // per_booking
        booking_id = f"bk_{tag}_{b}"
        if i % per_booking == 0:
            bookings.append((booking_id, f"{tag}-{b}", status, "done", page_slug, owner_id, "Seed Customer",
                             f"seed{b}@example.org", "UTC", 0, "USD", "{}", now, now))
        sid = f"ss_{tag}_{i}"
        ids.append(sid)
        sessions.append((sid, booking_id, i % per_booking + 1, owner_id, status, start, end, start, end, 0,
                         f"{sid}@sessionpack", 0, now))
    copy_rows(engine, "bookings", BOOKING_COLUMNS, bookings)
    copy_rows(engine, "sessions", SESSION_COLUMNS, sessions)
    return ids


# -- CPU accounting ---------------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _postgres_backends(dbname: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("postgres: ") and f" {dbname} " in cmd:
            pids.append(int(d.name))
    return pids


def cpu_snapshot(bench: "Bench", worker: "Worker | None" = None) -> dict:
    """CPU seconds so far of: the worker's main process, its pool processes, this database's
    PostgreSQL backends, the Redis server and this script. Per-process, so other work on the
    machine does not count (backends that exit between two snapshots are lost: the pools keep
    theirs open)."""
    snap = {"backends": {p: _cpu_of(p) for p in _postgres_backends(bench.pg.name)}, "self": _cpu_of(os.getpid())}
    if worker is not None and worker.proc is not None:
        snap["worker_main"] = _cpu_of(worker.proc.pid)
        snap["pool"] = {p: _cpu_of(p) for p in worker.child_pids()}
    redis_pids = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout.split()
    snap["redis"] = sum(_cpu_of(int(p)) for p in redis_pids)
    return snap


def cpu_delta(before: dict, after: dict, per: int) -> dict:
    """Milliseconds of CPU per unit of work between two snapshots, by component."""
    def pids_delta(key: str) -> float:
        a, b = after.get(key, {}), before.get(key, {})
        return sum(v - b.get(p, 0.0) for p, v in a.items())

    out = {
        "pool_processes_ms": pids_delta("pool"),
        "worker_main_ms": after.get("worker_main", 0.0) - before.get("worker_main", 0.0),
        "postgres_ms": pids_delta("backends"),
        "redis_ms": after["redis"] - before["redis"],
        "bench_script_ms": after["self"] - before["self"],
    }
    out = {k: 1000 * v / per for k, v in out.items()}
    # the service's CPU: this script's own polling and sending is listed but not counted
    out["total_ms"] = sum(v for k, v in out.items() if k != "bench_script_ms")
    return out
