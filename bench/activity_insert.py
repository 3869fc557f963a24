"""CPU of a unit of work that records 33 activity entries (a 10-session booking's) and commits, on
a PostgreSQL database of its own: as the service writes them (ORM objects) or with the
`activity_core` proposal (bench/proposals.py P7: one Core insert at commit).

    .venv/bin/python -m bench.activity_insert [orm|core] [--units 100] [--rounds 5]

Prints the CPU ms per unit of work of each round and their median. Run both, interleaved.
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variant", choices=["orm", "core"])
    p.add_argument("--units", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    from bench.proposals import apply

    if args.variant == "core":
        apply({"activity_core"})
    from sqlalchemy.orm import sessionmaker

    from models.db import make_engine, migrate
    from models.uow import UnitOfWork
    from tests.support import PostgresDatabase

    db = PostgresDatabase()
    try:
        engine = make_engine(db.url, clock=lambda: datetime.now(timezone.utc))
        migrate(engine)
        factory = sessionmaker(engine, expire_on_commit=False)

        def unit(i: int) -> None:
            with UnitOfWork(factory, before_commit=lambda uow, recorded: None) as uow:
                for n in range(33):
                    uow.record("session.held", booking_id=f"bk_{i}", session_id=f"ss_{i}_{n}", number=n,
                               start="2026-03-02T14:00:00Z")
                uow.commit()

        for i in range(20):  # warm-up
            unit(i)
        rounds = []
        for r in range(args.rounds):
            start = time.process_time()
            for i in range(args.units):
                unit(1000 + r * args.units + i)
            rounds.append(1000 * (time.process_time() - start) / args.units)
        engine.dispose()
    finally:
        db.drop()
    print(f"{args.variant}: CPU ms per unit of work of 33 entries: " + " ".join(f"{x:.2f}" for x in rounds)
          + f"; median {statistics.median(rounds):.2f}")


if __name__ == "__main__":
    main()
