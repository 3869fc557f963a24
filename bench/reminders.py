"""Reminders: one dispatch tick (`services.notifications.reminders.send_due`, batch 200) with
1,000,000 stored future reminders against the same tick with 1,000. The due work is the same in
both: 200 due reminders of 10 real confirmed 10-session bookings. The tick must cost what is due,
not what is stored.

    .venv/bin/python -m bench.reminders [--stored 1000000]

The stored future reminders are written with COPY (50 per session, 20 offsets x customer/owner...
see `future_rows`), attached to seeded confirmed sessions of another owner. Between timed ticks the
due reminders are put back to `scheduled` and the tick's emails, activity and task rows removed,
so every tick does the same work. Target: ratio <= 2.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

from bench.common import Bench, copy_rows, log, machine, package_requests, pages_config, report, seed_sessions, timed

TARGET = 2.0
PER_SESSION = 20  # stored future reminders per seeded session (before_minutes 10, 20, ... 200)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stored", type=int, default=1_000_000)
    p.add_argument("--small", type=int, default=1_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=200)
    args = p.parse_args(argv)
    from sqlalchemy import text

    from services.booking import submit_booking
    from services.notifications.reminders import send_due
    from tests.support import drain

    info = machine()
    with Bench("reminders", broker=False) as bench:
        bench.apply_config(pages_config({"coach": 10, "bulk": 1}))
        c = bench.container
        log("10 real bookings of 10 sessions (200 reminders to be due)")
        for r in package_requests(10, 10, tag="rm"):
            submit_booking(c, r)
        drain(c)
        due_ids = [i for (i,) in bench.sql("SELECT id FROM reminders WHERE status = 'scheduled'")]
        assert len(due_ids) == 200, len(due_ids)
        bench.sql("UPDATE reminders SET due_at = now() - interval '1 minute' WHERE id = ANY(:ids)", ids=due_ids)
        bench.sql("DELETE FROM task_outbox")

        n_sessions = (args.stored + PER_SESSION - 1) // PER_SESSION
        log(f"seeding {n_sessions} future sessions of another owner")
        t0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(days=400)
        sids = seed_sessions(bench.engine, "o-bulk", "bulk",
                             [(t0 + timedelta(hours=i), t0 + timedelta(hours=i, minutes=60)) for i in range(n_sessions)],
                             tag="rmb")

        def future_rows(lo: int, hi: int):
            for k in range(lo, hi):
                s, j = divmod(k, PER_SESSION)
                start = t0 + timedelta(hours=s)
                before = 10 * (j + 1)
                yield (sids[s], f"bk_rmb_{s // 10}", before, "customer", start - timedelta(minutes=before), "scheduled")

        cols = ["session_id", "booking_id", "before_minutes", "recipient", "due_at", "status"]

        def reset() -> None:
            bench.sql("UPDATE reminders SET status = 'scheduled', sent_at = NULL WHERE id = ANY(:ids)", ids=due_ids)
            bench.sql("DELETE FROM outbox_emails WHERE kind LIKE 'reminder%'")
            bench.sql("DELETE FROM activity WHERE action = 'reminder.sent'")
            bench.sql("DELETE FROM task_outbox")

        def tick() -> None:
            counts = send_due(c, batch=args.batch)
            assert counts["sent"] == 200, counts
            reset()

        claim_sql = ("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM reminders WHERE status = 'scheduled' AND due_at <= now() "
                     "ORDER BY due_at LIMIT 200 FOR UPDATE SKIP LOCKED")
        results = []
        stored = 0
        for target in (args.small, args.stored):
            log(f"storing future reminders up to {target}")
            stored += copy_rows(bench.engine, "reminders", cols, future_rows(stored, target))
            with bench.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE reminders"))
            total = bench.scalar("SELECT count(*) FROM reminders")
            log(f"{total} reminders stored; timing {args.repeat} ticks")
            t = timed(tick, repeat=args.repeat)
            with bench.engine.connect() as conn:
                plan = [r[0] for r in conn.execute(text(claim_sql))]
            results.append({"future_stored": stored, "reminders_total": total, "due": 200,
                            "tick_ms": 1000 * t["median"], "tick_min_ms": 1000 * t["min"],
                            "tick_max_ms": 1000 * t["max"], "claim_plan": plan})
    ratio = results[1]["tick_ms"] / results[0]["tick_ms"]
    report("reminders", [
        (f"tick with {results[0]['future_stored']:,} stored future reminders", f"{results[0]['tick_ms']:.1f} ms (200 due)"),
        (f"tick with {results[1]['future_stored']:,} stored future reminders", f"{results[1]['tick_ms']:.1f} ms (200 due)"),
        ("ratio", ratio),
        ("target", f"<= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'}"),
        ("claim query plan (1M)", " | ".join(x.strip() for x in results[1]["claim_plan"][:4])),
    ], {"machine": info, "rows": results, "ratio": ratio, "target": TARGET},
        [("ticks (median of %d)" % args.repeat, [{k: v for k, v in r.items() if k != "claim_plan"} for r in results])])


if __name__ == "__main__":
    main()
