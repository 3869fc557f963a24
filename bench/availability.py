"""Availability: `list_slots` over 90 days for an owner with 10,000 existing sessions, against one
indexed range query over the same rows (what the database alone must do to answer).

    .venv/bin/python -m bench.availability

Two layouts of the 10,000 sessions (each its own owner and page, 60-minute slots every 30
minutes, open 08:00-20:00 every day):
- spread: one-hour sessions on random free hours over 2,000 days around today (a few hundred of
  them fall in the 90 days asked for);
- dense: all 10,000 inside the 90 days, as 5-minute blocks at random 5-minute positions (each of
  them is in the busy list the slot computation has to walk).
Eight other owners have 10,000 spread sessions each in the same table (100,000 rows in all).
"""
from __future__ import annotations

import argparse
import random
from datetime import date, datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

from bench.common import RESULTS, Bench, log, machine, pages_config, report, seed_sessions, timed

SESSIONS = 10_000
OTHER_OWNERS = 8  # the sessions table also holds other owners' rows, as it would in production
DAYS = 90
ZONE = ZoneInfo("America/New_York")


def spread(first: date, rng: random.Random) -> list[tuple[datetime, datetime]]:
    positions = rng.sample(range(2000 * 12), SESSIONS)
    out = []
    for p in sorted(positions):
        day = first + timedelta(days=p // 12 - 1000)
        start = datetime.combine(day, dtime(8 + p % 12), ZONE).astimezone(timezone.utc)
        out.append((start, start + timedelta(hours=1)))
    return out


def dense(first: date, rng: random.Random) -> list[tuple[datetime, datetime]]:
    origin = datetime.combine(first, dtime(), ZONE).astimezone(timezone.utc)
    positions = rng.sample(range(DAYS * 24 * 12), SESSIONS)
    return [(origin + timedelta(minutes=5 * p), origin + timedelta(minutes=5 * p + 5)) for p in sorted(positions)]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--profile", action="store_true", help="pyinstrument 20 list_slots calls per layout")
    args = p.parse_args(argv)
    from sqlalchemy import text

    from services.scheduling import list_slots

    info = machine()
    rng = random.Random(20261207)
    first = (datetime.now(ZONE) + timedelta(days=3)).date()
    last = first + timedelta(days=DAYS - 1)
    rows = []
    with Bench("availability", broker=False) as bench:
        fillers = [f"other{i}" for i in range(OTHER_OWNERS)]
        bench.apply_config(pages_config({"spread": 1, "dense": 1, **{f: 1 for f in fillers}}))
        for layout, make in (("spread", spread), ("dense", dense)):
            log(f"{layout}: seeding {SESSIONS} sessions")
            seed_sessions(bench.engine, f"o-{layout}", layout, make(first, rng), tag=layout)
        log(f"seeding {OTHER_OWNERS} other owners with {SESSIONS} sessions each (the table is shared)")
        for f in fillers:
            seed_sessions(bench.engine, f"o-{f}", f, spread(first, rng), tag=f)
        bench.sql("ANALYZE")
        c = bench.container
        now = datetime.now(timezone.utc)
        start = datetime.combine(first, dtime(), ZONE)
        end = datetime.combine(last + timedelta(days=1), dtime(), ZONE)
        range_sql = text("SELECT block_start, block_end FROM sessions WHERE owner_id = :o "
                         "AND block_start < :e AND block_end > :s")
        for layout in ("spread", "dense"):
            owner = f"o-{layout}"
            result = {}

            def slots() -> None:
                with c.session_factory() as db:
                    result["slots"] = list_slots(db, f"{layout}/pkg", first.isoformat(), last.isoformat(), None, now=now)

            def query() -> None:
                with c.session_factory() as db:
                    result["rows"] = db.execute(range_sql, {"o": owner, "s": start, "e": end}).all()

            log(f"{layout}: timing list_slots and the range query")
            t_slots = timed(slots, repeat=args.repeat)
            t_query = timed(query, repeat=args.repeat)
            if args.profile:
                from pyinstrument import Profiler

                prof = Profiler(interval=0.0002)
                prof.start()
                for _ in range(20):
                    slots()
                prof.stop()
                out = RESULTS / f"availability-profile-{layout}.txt"
                out.write_text(prof.output_text(unicode=False, color=False))
                log(f"profile written to {out}")
            with bench.engine.connect() as conn:
                plan = [r[0] for r in conn.execute(text("EXPLAIN " + range_sql.text), {"o": owner, "s": start, "e": end})]
            rows.append({"layout": layout, "sessions_stored": SESSIONS, "rows_in_90_days": len(result["rows"]),
                         "free_slots": len(result["slots"]), "list_slots_ms": 1000 * t_slots["median"],
                         "range_query_ms": 1000 * t_query["median"],
                         "ratio": t_slots["median"] / t_query["median"], "plan": " | ".join(plan[:3])})
    report("availability", [
        (f"{r['layout']}: list_slots 90 days / range query",
         f"{r['list_slots_ms']:.2f} ms / {r['range_query_ms']:.2f} ms = {r['ratio']:.1f}x "
         f"({r['rows_in_90_days']} busy rows, {r['free_slots']} free slots)") for r in rows
    ], {"machine": info, "rows": rows},
        [("medians of %d runs (fresh ORM session each)" % args.repeat, [{k: v for k, v in r.items() if k != "plan"} for r in rows]),
         ("range query plans", [{"layout": r["layout"], "plan": r["plan"]} for r in rows])])


if __name__ == "__main__":
    main()
