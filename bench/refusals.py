"""What a refusal of an unknown id costs as they pile up (issue 16, finding 9: 15 ms -> 1.6 s at
100k when every refusal scanned the stored ones).

Creates its own PostgreSQL database, records a refusal through the real service
(`lifecycle.cancel_sessions` of an unknown session), then stores refusals of unknown ids with no
booking (COPY) up to 1M, and at each size times `change_outcome` of a fresh refusal (what a
redelivered task and a waiting CLI ask) and prints PostgreSQL's plan of its query.

    .venv/bin/python -m bench.refusals [--max 1000000]

Writes bench/results/refusals.json.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import uuid
from pathlib import Path

from sqlalchemy import text

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=1_000_000, help="refusals stored at the end (default 1M)")
    args = parser.parse_args()

    import tempfile

    from core.settings import Settings
    from core.wiring import build_container
    from models.db import make_engine, migrate
    from models.messaging import change_index
    from services import lifecycle
    from services.errors import ServiceError
    from services.lifecycle.changes import change_outcome, entries_of_change_query
    from tests.servers import ensure_postgres
    from tests.support import PostgresDatabase

    ensure_postgres()
    pg = PostgresDatabase()
    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-refusals-"))
    try:
        engine = make_engine(pg.url)
        migrate(engine)
        engine.dispose()
        c = build_container(Settings(var_dir=tmp, database_url=pg.url, broker_url=f"sqla+sqlite:///{tmp / 'b.db'}",
                                     secret_key="bench-secret-key-0123456789abcdef"))

        def refuse() -> str:
            key = uuid.uuid4().hex
            try:
                lifecycle.cancel_sessions(c, ["ss_" + uuid.uuid4().hex[:24]], admin=True, change_key=key)
            except ServiceError as exc:
                assert exc.code == "unknown_session"
            return key

        def store(n: int) -> None:
            buf = io.StringIO()
            for _ in range(n):
                key = uuid.uuid4().hex
                details = json.dumps({"change": key, "code": "unknown_session", "exit_code": 2,
                                      "message": "session does not exist"})
                buf.write(f"2026-12-01 00:00:00+00\tcustomer\tcancel.refused\t{details}\t{change_index(key)}\n")
            raw = c.engine.raw_connection()
            try:
                with raw.cursor() as cur, cur.copy(
                        "COPY activity (at, actor, action, details, change_key) FROM STDIN") as copy:
                    copy.write(buf.getvalue())
                raw.commit()
            finally:
                raw.close()

        def measure(stored: int) -> dict:
            key = refuse()
            with c.engine.begin() as conn:
                conn.execute(text("ANALYZE activity"))
                sql = str(entries_of_change_query(None, key).compile(dialect=c.engine.dialect,
                                                                     compile_kwargs={"literal_binds": True}))
                plan = [r[0] for r in conn.execute(text("EXPLAIN " + sql))]
            times = []
            with c.session_factory() as db:
                for _ in range(50):
                    start = time.perf_counter()
                    outcome = change_outcome(db, None, key)
                    times.append(time.perf_counter() - start)
            assert outcome is not None and outcome.state == "refused"
            row = {"stored": stored, "median_ms": round(statistics.median(times) * 1000, 3),
                   "p95_ms": round(sorted(times)[int(len(times) * 0.95)] * 1000, 3), "plan": plan}
            print(f"{stored:>9} stored  median {row['median_ms']:7.3f} ms  p95 {row['p95_ms']:7.3f} ms  "
                  f"{'index scan' if any('ix_activity_change_key' in p for p in plan) else 'NO INDEX'}", flush=True)
            return row

        rows, stored = [measure(1)], 1
        for target in (10_000, 100_000, args.max):
            if target <= stored:
                continue
            while stored < target:
                step = min(100_000, target - stored)
                store(step)
                stored += step
            rows.append(measure(stored))
        print("\nplan at the largest size:\n  " + "\n  ".join(rows[-1]["plan"]))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "refusals.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
        c.engine.dispose()
    finally:
        pg.drop()


if __name__ == "__main__":
    main()
