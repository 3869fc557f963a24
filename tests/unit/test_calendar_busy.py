"""The busy source's cache and its fail-safe error, and how CalDAV failures are classified."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from caldav.lib import error as dav_error

from services.calendar.busy import CaldavBusySource
from services.calendar.caldav_calendar import _translated
from services.errors import OperationFailed, PermanentError, TransientError

START = datetime(2026, 3, 2, tzinfo=timezone.utc)
END = START + timedelta(days=7)
BUSY = [(START + timedelta(hours=15), START + timedelta(hours=16))]


class FakeCalendar:
    """Counts busy() calls; raises `failure` when set."""

    def __init__(self):
        self.calls = 0
        self.failure = None

    def busy(self, owner, start, end):
        self.calls += 1
        if self.failure:
            raise self.failure
        return list(BUSY)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def owner(url="https://cal.example.com/kim/work/", calendar=True):
    config = {"caldav_url": url, "username": "kim", "password_env": "KIM_PW"} if calendar else None
    return SimpleNamespace(id="kim", timezone="America/New_York", calendar=config)


@pytest.fixture
def parts():
    calendar, clock = FakeCalendar(), FakeClock()
    source = CaldavBusySource(SimpleNamespace(calendar_busy_cache_seconds=60.0), calendar=calendar, clock=clock)
    return source, calendar, clock


def test_owners_without_a_calendar_have_no_busy_times(parts):
    source, calendar, _ = parts
    assert source(owner(calendar=False), START, END) == [] and calendar.calls == 0


def test_the_same_window_is_read_once_until_the_cache_expires(parts):
    source, calendar, clock = parts
    assert source(owner(), START, END) == BUSY
    clock.now += 59
    assert source(owner(), START, END) == BUSY and calendar.calls == 1
    clock.now += 2
    assert source(owner(), START, END) == BUSY and calendar.calls == 2


def test_another_window_or_calendar_is_read_afresh(parts):
    source, calendar, _ = parts
    source(owner(), START, END)
    source(owner(), START, END + timedelta(days=1))
    source(owner(url="https://cal.example.com/kim/other/"), START, END)
    assert calendar.calls == 3


def test_an_unreadable_calendar_fails_safe_and_is_not_cached(parts):
    source, calendar, _ = parts
    calendar.failure = TransientError("calendar_unavailable", "cannot reach https://cal.example.com/kim/work/")
    with pytest.raises(OperationFailed) as err:
        source(owner(), START, END)
    assert err.value.code == "calendar_unavailable"
    assert "kim" in err.value.message and "cannot reach" in err.value.message
    calendar.failure = None
    assert source(owner(), START, END) == BUSY and calendar.calls == 2


def test_a_missing_password_also_fails_safe(parts):
    source, calendar, _ = parts
    calendar.failure = PermanentError("calendar_password_missing", "set KIM_PW")
    with pytest.raises(OperationFailed, match="KIM_PW"):
        source(owner(), START, END)


# -- classifying CalDAV failures ---------------------------------------------------------------

CONN = SimpleNamespace(url="https://cal.example.com/kim/work/", username="kim")


def translated(exc):
    with pytest.raises((TransientError, PermanentError)) as err:
        with _translated(owner(), CONN, "writing"):
            raise exc
    return err.value


@pytest.mark.parametrize("exc", [
    dav_error.PutError(status=503), dav_error.DAVError(status=None), dav_error.ReportError(status=429),
    ConnectionRefusedError(111, "refused"), TimeoutError("timed out"),
])
def test_network_failures_and_server_errors_are_transient(exc):
    err = translated(exc)
    assert isinstance(err, TransientError) and err.code == "calendar_unavailable"


def test_rate_limits_carry_the_servers_delay():
    err = translated(dav_error.RateLimitError(status=429, retry_after="30", retry_after_seconds=30.0))
    assert isinstance(err, TransientError) and err.retry_after == 30.0


@pytest.mark.parametrize("exc, code", [
    (dav_error.AuthorizationError(status=401), "calendar_auth_failed"),
    (dav_error.NotFoundError(status=404), "calendar_not_found"),
    (dav_error.PutError(status=409), "calendar_not_found"),
    (dav_error.PutError(status=415), "calendar_refused"),
])
def test_refusals_are_permanent(exc, code):
    err = translated(exc)
    assert isinstance(err, PermanentError) and err.code == code


def test_a_refused_login_names_the_password_variable():
    assert "KIM_PW" in translated(dav_error.AuthorizationError(status=401)).message
