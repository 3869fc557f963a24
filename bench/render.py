"""CPU of rendering a booking's notifications, in this process, without a database: the two
calendar files of a 10-session confirmation, the whole composition of both confirmation emails
(templates and calendar files), and their MIME messages as bytes.

    .venv/bin/python -m bench.render [--rounds 7] [--against /work/wt/<other worktree>]

Each figure is the median over rounds of the CPU time (time.process_time) per call. With
--against, the same measurement runs in the other worktree (its own .venv and code, this file)
in rounds interleaved with this one, and the ratios other/this are printed: an A/B against the
starting commit. The calendar files are also measured against the icalendar-built reference kept
for the tests (tests/unit/ics_reference.py), in this process.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve()
PROJECT = Path(os.environ.get("BENCH_RENDER_TREE") or HERE.parent.parent)  # --against: the other tree
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))


def _cpu_per_call(fn, budget: float = 0.4) -> float:
    """CPU seconds per call: calls repeated until `budget` seconds of CPU are spent."""
    fn()
    n, start = 0, time.process_time()
    while True:
        fn()
        n += 1
        spent = time.process_time() - start
        if spent >= budget:
            return spent / n


def measure() -> dict:
    """One round: CPU ms per call of each figure, in this process's code."""
    from services.notifications import ics
    from services.notifications.compose import booking_confirmed
    from services.notifications import sender
    from tests.unit.notification_samples import sample_view

    view = sample_view()
    now = datetime(2026, 2, 1, 8, 30, tzinfo=timezone.utc)
    specs = booking_confirmed(view)
    # what the file outbox writes: email_bytes since the MIME change, build_email().as_bytes() before
    to_bytes = getattr(sender, "email_bytes", None) or (lambda *a, **k: sender.build_email(*a, **k).as_bytes())
    out = {
        "ics_2_files": lambda: [ics.publish_calendar(view, a, now=now) for a in ("customer", "owner")],
        "compose_confirmation": lambda: booking_confirmed(view),
        "mime_2_messages": lambda: [to_bytes(s, "sessionpack <no-reply@example.com>", now=now) for s in specs],
    }
    try:
        from tests.unit import ics_reference as ref

        out["ics_2_files_icalendar"] = lambda: [
            ref.calendar(view, view.sessions, a, now, "CONFIRMED", "PUBLISH") for a in ("customer", "owner")]
    except ImportError:  # a tree from before the template
        pass
    return {name: 1000 * _cpu_per_call(fn) for name, fn in out.items()}


def _round_in(tree: Path) -> dict:
    python = tree / ".venv" / "bin" / "python"
    done = subprocess.run([str(python), str(HERE), "--one-round"], cwd=tree, capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(tree), "BENCH_RENDER_TREE": str(tree)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--against", type=Path, help="another worktree (with its own .venv) to run A/B against")
    p.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_round:
        print(json.dumps(measure()))
        return
    trees = {"this": PROJECT} | ({"other": args.against.resolve()} if args.against else {})
    rounds: dict[str, list[dict]] = {k: [] for k in trees}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for label, tree in trees.items():  # interleaved: this, other, this, other...
            rounds[label].append(_round_in(tree))
        loads.append(os.getloadavg()[0])
    print(f"load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}; "
          f"{args.rounds} rounds, medians of CPU ms per call")
    names = sorted({n for r in rounds["this"] for n in r})
    print(f"{'figure':28} {'this':>9}" + (f" {'other':>9} {'other/this':>10}" if args.against else ""))
    for name in names:
        this = statistics.median(r[name] for r in rounds["this"] if name in r)
        line = f"{name:28} {this:9.3f}"
        if args.against:
            values = [r[name] for r in rounds["other"] if name in r]
            if values:
                other = statistics.median(values)
                line += f" {other:9.3f} {other / this:10.2f}"
        print(line)
    this = statistics.median(r["ics_2_files"] for r in rounds["this"])
    if "ics_2_files_icalendar" in rounds["this"][0]:
        ref = statistics.median(r["ics_2_files_icalendar"] for r in rounds["this"])
        print(f"calendar files, icalendar-built / this: {ref / this:.1f}x")


if __name__ == "__main__":
    main()
