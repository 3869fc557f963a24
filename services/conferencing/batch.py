"""The meetings of a whole package at once: created in parallel (bounded), all or none."""
from __future__ import annotations

import logging
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from typing import Callable, Iterable, TypeVar

from services.errors import TransientError

from .base import ConferencingProvider, MeetingDetails, MeetingRequest

log = logging.getLogger("sessionpack.conferencing.batch")

T = TypeVar("T")
R = TypeVar("R")


def _run_parallel(fn: Callable[[T], R], items: list[T], max_parallel: int, *, name: str,
                  stop_on_error: bool) -> tuple[list[R | None], list[tuple[int, Exception]]]:
    """Call `fn` on every item, at most `max_parallel` at a time. Returns the results by index
    (None where a call failed or never ran) and the failures in the order they happened. With
    `stop_on_error` the calls not yet started are cancelled after the first failure."""
    results: list[R | None] = [None] * len(items)
    failures: list[tuple[int, Exception]] = []
    if not items:
        return results, failures
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(items))), thread_name_prefix=name) as pool:
        futures = {pool.submit(fn, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except CancelledError:
                continue
            except Exception as exc:  # every failure is reported to the caller, none is lost
                failures.append((index, exc))
                if stop_on_error and len(failures) == 1:
                    for other in futures:
                        other.cancel()  # only those not started yet; running ones finish
    return results, failures


def create_meetings(provider: ConferencingProvider, requests: list[MeetingRequest],
                    max_parallel: int = 4) -> list[MeetingDetails]:
    """Create one meeting per request, at most `max_parallel` calls at a time, and return their
    details in the order of `requests`.

    All or none: when any create fails, the ones not started are skipped, the meetings already
    made are deleted (best effort; delete is idempotent), and the first error is raised so the
    caller can roll the booking back. A create that failed transiently (a timeout) may still have
    made its meeting, so it is looked up with `find()` and deleted too.
    """
    results, failures = _run_parallel(provider.create, list(requests), max_parallel,
                                      name=f"{provider.name}-create", stop_on_error=True)
    if not failures:
        return [details for details in results if details is not None]
    made = [details.external_id for details in results if details is not None]
    for index, exc in failures:
        if isinstance(exc, TransientError):
            made += _find_quietly(provider, requests[index])
    log.warning("%s: %d of %d meetings failed (%s); deleting the %d made", provider.name, len(failures),
                len(requests), failures[0][1], len(made))
    for external_id, exc in _delete_all(provider, made, max_parallel):
        log.error("%s: could not delete meeting %s while rolling back: %s", provider.name, external_id, exc)
    raise failures[0][1]


def delete_meetings(provider: ConferencingProvider, external_ids: Iterable[str], max_parallel: int = 4) -> None:
    """Delete the meetings in parallel. Every delete is tried; then the first failure, if any, is
    raised. A meeting already gone counts as deleted, so calling this again is safe."""
    failures = _delete_all(provider, list(external_ids), max_parallel)
    if failures:
        raise failures[0][1]


def _delete_all(provider: ConferencingProvider, external_ids: list[str],
                max_parallel: int) -> list[tuple[str, Exception]]:
    _, failures = _run_parallel(provider.delete, external_ids, max_parallel,
                                name=f"{provider.name}-delete", stop_on_error=False)
    return [(external_ids[index], exc) for index, exc in failures]


def _find_quietly(provider: ConferencingProvider, request: MeetingRequest) -> list[str]:
    try:
        found = provider.find(request)
    except Exception as exc:  # best effort during a rollback that is already failing
        log.error("%s: could not look for session %s's meeting while rolling back: %s",
                  provider.name, request.session_id, exc)
        return []
    return [found.external_id] if found else []
