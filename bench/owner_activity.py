"""The owner console's activity stream at scale: PostgreSQL filled with 1,000,000 activity
entries (100,000 bookings of 20 owners on 40 pages, 300,000 sessions), then one page (50 rows)
of the stream per filter, timed (median of the runs, through `read_stream`, so the two small
follow-up queries that describe the rows are included) with the main query's EXPLAIN ANALYZE.

    .venv/bin/python -m bench.owner_activity [--bookings 100000] [--runs 7] [--explain]

Data is generated inside PostgreSQL (INSERT ... SELECT generate_series), about a minute.
The database is dropped at the end.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

OWNERS, PAGES = 20, 40
WEEK = {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def config() -> dict:
    owners = [{"id": f"o{i}", "name": f"Owner {i}", "email": f"o{i}@example.com", "timezone": "America/New_York"}
              for i in range(OWNERS)]
    pages = [{"slug": f"p{i}", "owner": f"o{i % OWNERS}", "name": f"Page {i}", "timezone": "America/New_York",
              "availability": {"weekly": WEEK},
              "event_types": [{"slug": "pkg", "name": "Package", "duration_minutes": 60,
                               "scheduling": {"sessions_per_booking": 3}, "conferencing": {"provider": "none"}},
                              {"slug": "one", "name": "Single", "duration_minutes": 60,
                               "conferencing": {"provider": "none"}}]}
             for i in range(PAGES)]
    return {"owners": owners, "booking_pages": pages}


FILL = [
    # 100k bookings, 5 minutes apart ending now: ~1 year. Every 23rd cancelled, every 51st failed,
    # every 97th awaiting approval; a customer has 5 bookings.
    """
    INSERT INTO bookings (id, request_id, status, saga_step, page_slug, event_type_id, owner_id, event_type_slug,
                          customer_name, customer_email, customer_timezone, price_cents, currency, terms,
                          created_at, updated_at)
    SELECT 'bk_' || g, 'req_' || g,
           CASE WHEN g % 23 = 0 THEN 'cancelled' WHEN g % 51 = 0 THEN 'failed'
                WHEN g % 97 = 0 THEN 'awaiting_approval' ELSE 'confirmed' END,
           'done', 'p' || (g % :pages), et.id, 'o' || (g % :pages % :owners), et.slug,
           'Customer ' || (g % :customers), 'Customer' || (g % :customers) || '@Example.org', 'Europe/Berlin',
           30000, 'USD', '{"event_name": "Package", "page_name": "Page"}'::json,
           now() - (:bookings - g) * interval '5 minutes', now() - (:bookings - g) * interval '5 minutes'
    FROM generate_series(1, :bookings) g
    JOIN event_types et ON et.page_slug = 'p' || (g % :pages) AND et.slug = CASE WHEN g % 3 = 0 THEN 'one' ELSE 'pkg' END
    """,
    # Three sessions a booking, each in an hour of its own (no owner's sessions overlap).
    """
    INSERT INTO sessions (id, booking_id, number, owner_id, status, start_at, end_at, block_start, block_end,
                          relative_cost_cents, uid, sequence, updated_at)
    SELECT 'ss_' || g || '_' || n, 'bk_' || g, n, 'o' || (g % :pages % :owners),
           CASE WHEN g % 23 = 0 THEN 'cancelled' ELSE 'confirmed' END,
           timestamptz '2027-01-01' + (g * 3 + n) * interval '1 hour',
           timestamptz '2027-01-01' + (g * 3 + n) * interval '1 hour' + interval '1 hour',
           timestamptz '2027-01-01' + (g * 3 + n) * interval '1 hour',
           timestamptz '2027-01-01' + (g * 3 + n) * interval '1 hour' + interval '1 hour',
           10000, 'ss_' || g || '_' || n || '@bench', 0, now()
    FROM generate_series(1, :bookings) g, generate_series(1, 3) n
    """,
    # Ten entries a booking, a second apart: the booking saga's shape; a cancelled booking's last
    # three are its sessions' cancellations, every 7th booking has a reschedule.
    """
    INSERT INTO activity (at, booking_id, session_id, actor, action, details)
    SELECT b.created_at + k * interval '1 second', b.id,
           CASE WHEN k BETWEEN 1 AND 3 THEN b.id || '_' || k WHEN k >= 7 THEN b.id || '_' || (k - 6) END,
           'system',
           CASE WHEN k = 0 THEN 'booking.requested' WHEN k <= 3 THEN 'session.held'
                WHEN k = 4 THEN 'payment.authorized' WHEN k = 5 THEN 'payment.captured'
                WHEN k = 6 THEN 'booking.confirmed'
                WHEN b.status = 'cancelled' THEN 'session.cancelled'
                WHEN k = 9 AND substr(b.id, 4)::int % 7 = 0 THEN 'session.rescheduled'
                ELSE 'session.confirmed' END,
           '{}'::json
    FROM bookings b, generate_series(0, 9) k
    """,
]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bookings", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--explain", action="store_true", help="print each query's EXPLAIN (ANALYZE, BUFFERS)")
    args = p.parse_args(argv)

    from sqlalchemy import text

    from models.db import migrate
    from services.config import apply_config
    from services.console.accounts import OwnerIdentity
    from services.console.stream import StreamFilters, owner_page_slugs, read_stream, stream_query
    from tests.support import PostgresDatabase
    from core.settings import Settings
    from core.wiring import build_container

    pg = PostgresDatabase()
    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-owner-activity-"))
    try:
        settings = Settings(var_dir=tmp, database_url=pg.url, broker_url=f"sqla+sqlite:///{tmp / 'b.db'}",
                            secret_key="bench-secret-key-0123456789")
        c = build_container(settings, busy_source=None)
        migrate(c.engine)
        with c.uow() as uow:
            apply_config(uow, config())
            uow.commit()
        params = {"bookings": args.bookings, "pages": PAGES, "owners": OWNERS, "customers": args.bookings // 5}
        started = time.perf_counter()
        with c.engine.begin() as conn:
            for statement in FILL:
                conn.execute(text(statement), params)
        with c.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                      for t in ("activity", "bookings", "sessions")}
        log(f"filled in {time.perf_counter() - started:.1f}s: {counts}")

        admin = OwnerIdentity("o0", "Owner 0", "o0@example.com", "UTC", True)
        owner = OwnerIdentity("o3", "Owner 3", "o3@example.com", "UTC", False)
        with c.session_factory() as db:
            pkg = db.execute(text("SELECT id FROM event_types WHERE page_slug = 'p3' AND slug = 'one'")).scalar()
            newest = db.execute(text("SELECT max(at) FROM activity")).scalar()
        customer = f"customer{(args.bookings - 37) % (args.bookings // 5)}@example.org"  # o3's? any: scope decides
        with c.session_factory() as db:
            row = db.execute(text("SELECT lower(customer_email) FROM bookings WHERE page_slug = 'p3' ORDER BY id DESC LIMIT 1")).scalar()
            customer = row or customer
        cases = [
            ("site admin, no filter", admin, StreamFilters()),
            ("owner (1 of 20), no filter", owner, StreamFilters()),
            ("owner + page", owner, StreamFilters(page="p3")),
            ("owner + event type", owner, StreamFilters(event_type_id=pkg)),
            ("owner + customer email", owner, StreamFilters(customer_email=customer.upper())),
            ("owner + date range (one week, 3 months back)", owner,
             StreamFilters(since=newest - timedelta(days=97), until=newest - timedelta(days=90))),
            ("owner + action session.cancelled", owner, StreamFilters(actions=("session.cancelled",))),
            ("owner + action session.rescheduled", owner, StreamFilters(actions=("session.rescheduled",))),
            ("owner + status awaiting_approval", owner, StreamFilters(status="awaiting_approval")),
            ("owner + status cancelled + page + action", owner,
             StreamFilters(status="cancelled", page="p3", actions=("session.cancelled",))),
            ("site admin + customer email", admin, StreamFilters(customer_email=customer)),
            ("site admin + action booking.failed (none)", admin, StreamFilters(actions=("booking.failed",))),
        ]
        results = []
        for name, who, filters in cases:
            for cursor_label in ("first page", "page 100"):
                cursor = None
                if cursor_label == "page 100":
                    with c.session_factory() as db:
                        for _ in range(99):
                            page = read_stream(db, who, filters, cursor=cursor, limit=50)
                            cursor = page.next_cursor
                            if cursor is None:
                                break
                    if cursor is None:
                        continue
                times, rows = [], 0
                with c.session_factory() as db:
                    for _ in range(args.runs):
                        t0 = time.perf_counter()
                        page = read_stream(db, who, filters, cursor=cursor, limit=50)
                        times.append((time.perf_counter() - t0) * 1000)
                        rows = len(page.rows)
                        db.expire_all()
                ms = statistics.median(times)
                results.append({"case": name, "page": cursor_label, "rows": rows, "median_ms": round(ms, 2),
                                "max_ms": round(max(times), 2)})
                print(f"{name:<48} {cursor_label:<10} rows={rows:<3} median {ms:7.2f} ms  max {max(times):7.2f} ms",
                      flush=True)
                if args.explain:
                    from services.console.stream import decode_cursor

                    with c.session_factory() as db:
                        pages = owner_page_slugs(db, who)
                    query = stream_query(pages, filters, decode_cursor(cursor) if cursor else None, 51)
                    compiled = query.compile(c.engine, compile_kwargs={"render_postcompile": True})
                    with c.engine.connect() as conn:
                        plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled),
                                                                    compiled.params).all()]
                    print("    " + "\n    ".join(plan), flush=True)
        out = PROJECT / "bench" / "results" / "owner_activity.json"
        out.write_text(json.dumps({"counts": counts, "runs": args.runs, "results": results}, indent=2) + "\n")
        log(f"wrote {out}")
    finally:
        try:
            c.engine.dispose()
        except Exception:
            pass
        pg.drop()


if __name__ == "__main__":
    main()
