"""Fixtures of the reliability suite (fault matrix, soak, fuzz, abuse) and the results table.

Every case of the fault matrix and the soak reports one row through the `results` fixture; the
table is printed at the end of the run (`pytest_terminal_summary`). Tests that need servers
(PostgreSQL, Redis, localstripe) start or reach them and FAIL when they cannot: nothing here
skips.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

RESULTS: list["CaseResult"] = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "reliability: fault injection with a real worker on PostgreSQL and Redis (slow, needs servers)")


@dataclass
class CaseResult:
    """One row of the table: a fault injected at one step, and what the service made of it."""

    suite: str
    step: str
    fault: str
    injected: int = 0  # faults the harness actually injected (peer answers, kills, restarts, drops)
    bookings: int = 0
    consistent: bool = False  # the invariants held once the service recovered
    lost: int = 0  # bookings that never settled (still pending) or requests that vanished
    final: str = ""  # e.g. "confirmed", "failed", "3 confirmed / 1 failed"
    problems: list[str] = field(default_factory=list)
    expected_failure: bool = False  # a known bug (xfail): the row shows what the bug does


@pytest.fixture(scope="session")
def results():
    return RESULTS


ABUSE: list["AbuseResult"] = []


@dataclass
class AbuseResult:
    """One row of the "abuse through the broker" table (test_broker_abuse.py): raw messages
    published by an attacker, how the worker answered, and the harm measured (none expected)."""

    finding: str  # the numbered finding of issue 16
    attack: str
    messages: int = 0  # messages published
    refused: int = 0  # answered with an error (and recorded as refused)
    outcome: str = ""  # the refusal codes, or "ignored" / "allowed"
    harm: list[str] = field(default_factory=list)


def _abuse_table(tr) -> None:
    tr.section("abuse through the broker: attacks tried / refused / harm done")
    header = f"{'finding':<7} {'attack':<58} {'msgs':>4} {'refused':>7} {'harm':>4}  answer"
    tr.write_line(header)
    tr.write_line("-" * len(header))
    for r in ABUSE:
        tr.write_line(f"{r.finding:<7} {r.attack[:58]:<58} {r.messages:>4} {r.refused:>7} {len(r.harm):>4}  {r.outcome}")
        for problem in r.harm[:3]:
            tr.write_line(f"{'':<8}! {problem[:150]}")
    tr.write_line("-" * len(header))
    harmed = sum(1 for r in ABUSE if r.harm)
    tr.write_line(f"{len(ABUSE)} attacks tried, {sum(r.messages for r in ABUSE)} messages, "
                  f"{sum(r.refused for r in ABUSE)} refused, harm done in {harmed} "
                  f"(= {sum(len(r.harm) for r in ABUSE)} problems)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if ABUSE:
        _abuse_table(terminalreporter)
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("reliability: faults injected / recovered consistent / lost")
    header = f"{'suite':<8} {'step':<13} {'fault':<36} {'injected':>8} {'bookings':>8} {'consistent':>10} {'lost':>5}  final"
    tr.write_line(header)
    tr.write_line("-" * len(header))
    for r in RESULTS:
        mark = "yes" if r.consistent else ("NO (xfail)" if r.expected_failure else "NO")
        tr.write_line(f"{r.suite:<8} {r.step:<13} {r.fault:<36} {r.injected:>8} {r.bookings:>8} {mark:>10} {r.lost:>5}  {r.final}")
        for problem in r.problems[:3]:
            tr.write_line(f"{'':<59}! {problem[:150]}")
    injected = sum(r.injected for r in RESULTS)
    consistent = sum(1 for r in RESULTS if r.consistent)
    known = [r for r in RESULTS if r.expected_failure and not r.consistent]
    lost = sum(r.lost for r in RESULTS)
    lost_known = sum(r.lost for r in known)
    tr.write_line("-" * len(header))
    tr.write_line(f"{len(RESULTS)} cases, {injected} faults injected, {consistent}/{len(RESULTS)} recovered consistent, "
                  f"{lost} bookings lost ({lost_known} of them in known-bug cases); "
                  f"{len(known)} inconsistent case(s) are known bugs (xfail), "
                  f"{len(RESULTS) - consistent - len(known)} unexpected")
