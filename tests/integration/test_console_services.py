"""The owner console's services on both databases: logins, the stream's scope, filters and
cursor, and the money at a glance with its CSV."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from services.console import accounts, money, scope, stream
from services.console.accounts import LoginLimiter, OwnerIdentity
from services.console.stream import StreamFilters
from services.errors import InvalidInput, NotFound, OperationFailed
from tests.console_data import add_booking, event_type_id, two_owners_config, utc
from tests.support import apply_config

KIM = OwnerIdentity("kim", "Kim Coach", "kim@example.com", "America/New_York", False)
LEE = OwnerIdentity("lee", "Lee Tutor", "lee@example.com", "Europe/Berlin", False)
ADMIN = OwnerIdentity("root", "Site", "root@example.com", "UTC", True)


@pytest.fixture
def world(container, db_backend):
    apply_config(container, two_owners_config())
    with container.session_factory() as db:
        add_booking(db, "bk_k1", page="kim-page", owner="kim", at=utc(2026, 10, 5, 12), email="Sam@Example.org",
                    refunds=(5000,), fees=(1000,))
        add_booking(db, "bk_k2", page="kim-page", owner="kim", at=utc(2026, 11, 2, 12), email="ana@example.org",
                    event_type="intro", sessions=1, price_cents=0, status="cancelled")
        add_booking(db, "bk_k3", page="kim-page", owner="kim", at=utc(2026, 11, 20, 12), email="bo@example.org",
                    pending_refunds=(1234,))
        add_booking(db, "bk_l1", page="lee-page", owner="lee", at=utc(2026, 11, 10, 12), email="sam@example.org")
        db.commit()
    return container


def _all(db, owner, filters=StreamFilters(), limit=50):
    rows, cursor = [], None
    while True:
        page = stream.read_stream(db, owner, filters, cursor=cursor, limit=limit)
        rows += page.rows
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def test_stream_is_newest_first_scoped_and_lists_each_session(world):
    with world.session_factory() as db:
        kim = _all(db, KIM)
        assert {r.booking_id for r in kim} == {"bk_k1", "bk_k2", "bk_k3"}
        assert [(r.at, r.id) for r in kim] == sorted(((r.at, r.id) for r in kim), reverse=True)
        sessions = [r for r in kim if r.booking_id == "bk_k1" and r.action == "session.confirmed"]
        assert sorted(r.session_number for r in sessions) == [1, 2, 3]
        assert all(r.sessions_in_booking == 3 and r.session_start is not None for r in sessions)
        assert {r.booking_id for r in _all(db, LEE)} == {"bk_l1"}
        # The site admin sees the entries of no booking too (a configuration applied).
        assert {r.booking_id for r in _all(db, ADMIN)} == {"bk_k1", "bk_k2", "bk_k3", "bk_l1", None}


def test_stream_cursor_pages_through_without_gaps_or_repeats(world):
    with world.session_factory() as db:
        whole = [r.id for r in _all(db, ADMIN, limit=200)]
        paged = [r.id for r in _all(db, ADMIN, limit=3)]
        assert paged == whole and len(whole) == len(set(whole)) == 4 + 2 + 4 + 4 + 1
        first = stream.read_stream(db, ADMIN, limit=3)
        assert first.next_cursor and len(first.rows) == 3
        with pytest.raises(InvalidInput):
            stream.read_stream(db, ADMIN, cursor="not-a-cursor")
        with pytest.raises(InvalidInput):
            stream.read_stream(db, ADMIN, limit=0)


def test_stream_filters(world):
    with world.session_factory() as db:
        ids = lambda f, who=KIM: {r.booking_id for r in _all(db, who, f)}  # noqa: E731
        assert ids(StreamFilters(customer_email="sam@EXAMPLE.org")) == {"bk_k1"}
        assert ids(StreamFilters(customer_email="sam@example.org"), ADMIN) == {"bk_k1", "bk_l1"}
        assert ids(StreamFilters(page="lee-page")) == set()  # another owner's page: nothing
        assert ids(StreamFilters(page="lee-page"), ADMIN) == {"bk_l1"}
        intro = event_type_id(db, "kim-page", "intro")
        assert ids(StreamFilters(event_type_id=intro)) == {"bk_k2"}
        assert ids(StreamFilters(status="cancelled")) == {"bk_k2"}
        assert ids(StreamFilters(since=utc(2026, 11, 1), until=utc(2026, 11, 3))) == {"bk_k2"}
        rows = _all(db, KIM, StreamFilters(actions=("booking.confirmed",)))
        assert {r.action for r in rows} == {"booking.confirmed"} and len(rows) == 3
        assert ids(StreamFilters(booking_id="bk_l1")) == set()
        with pytest.raises(InvalidInput):
            StreamFilters(status="bogus")


def test_booking_scope(world):
    with world.session_factory() as db:
        assert scope.booking_for(db, KIM, "bk_k1").id == "bk_k1"
        with pytest.raises(scope.Forbidden):
            scope.booking_for(db, KIM, "bk_l1")
        with pytest.raises(NotFound):
            scope.booking_for(db, KIM, "bk_nope")
        assert scope.booking_for(db, ADMIN, "bk_l1").id == "bk_l1"
        choices = scope.page_choices(db, KIM)
        assert [c.slug for c in choices] == ["kim-page"]
        assert sorted(name for _id, name in choices[0].event_types) == ["Coaching, 3 sessions", "Intro call"]


def test_money_by_month_and_csv_agree(world):
    with world.session_factory() as db:
        months = money.money_by_month(db, KIM, zone="America/New_York")
        by = {(m.page, m.month): m for m in months}
        assert set(by) == {("kim-page", "2026-10"), ("kim-page", "2026-11")}
        october = by[("kim-page", "2026-10")]
        assert (october.captured, october.fees, october.refunded, october.net) == (30000, 1000, 5000, 26000)
        november = by[("kim-page", "2026-11")]
        assert (november.captured, november.refunded, november.pending_refunds) == (30000, 0, 1234)
        text = "".join(money.ledger_csv(db, KIM))
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {r["booking_id"] for r in rows} == {"bk_k1", "bk_k3"}
        succeeded = [r for r in rows if r["status"] == "succeeded"]
        net = sum(round(float(r["signed_amount"]) * 100) for r in succeeded)
        assert net == sum(m.net for m in months)
        everyone = list(csv.DictReader(io.StringIO("".join(money.ledger_csv(db, ADMIN)))))
        assert {r["booking_id"] for r in everyone} == {"bk_k1", "bk_k3", "bk_l1"}


def test_set_password_and_authenticate(world):
    with pytest.raises(NotFound):
        accounts.set_password(world, "nobody", "long enough password")
    with pytest.raises(InvalidInput):
        accounts.set_password(world, "kim", "short")
    who = accounts.set_password(world, "kim", "correct horse battery", site_admin=False)
    assert who.id == "kim" and not who.site_admin
    with world.session_factory() as db:
        from models import Owner

        stored = db.get(Owner, "kim").password_hash
        assert stored.startswith("$argon2") and "correct horse" not in stored
    limiter = LoginLimiter("memory://")
    assert accounts.authenticate(world, limiter, "kim", "correct horse battery", "10.0.0.1").id == "kim"
    assert accounts.authenticate(world, limiter, "KIM@example.com", "correct horse battery", "10.0.0.1").id == "kim"
    with pytest.raises(OperationFailed) as refused:
        accounts.authenticate(world, limiter, "kim", "wrong password!!", "10.0.0.1")
    assert refused.value.code == "invalid_login"
    with pytest.raises(OperationFailed) as unknown:
        accounts.authenticate(world, limiter, "lee", "whatever it is", "10.0.0.1")  # lee has no password
    assert unknown.value.code == "invalid_login"
    who = accounts.authenticate(world, limiter, "kim", "correct horse battery", "10.0.0.2")
    stamp, generation = who.stamp, who.generation
    assert accounts.load_identity(world, "kim", stamp, generation) is not None
    assert accounts.load_identity(world, "kim", stamp) is None  # a cookie without its generation
    accounts.set_password(world, "kim", "another long password")
    assert accounts.load_identity(world, "kim", stamp, generation) is None  # a new password ends old sessions


def test_login_rate_limited_per_owner_address_pair_and_per_address(world):
    accounts.set_password(world, "kim", "correct horse battery")
    limiter = LoginLimiter("memory://", per_pair="3/15minutes", per_address="5/15minutes")
    for _ in range(3):
        with pytest.raises(OperationFailed):
            accounts.authenticate(world, limiter, "kim", "bad password 123", "10.0.0.1")
    with pytest.raises(accounts.TooManyAttempts) as closed:  # that address, even with the right password
        accounts.authenticate(world, limiter, "kim", "correct horse battery", "10.0.0.1")
    assert closed.value.code == "too_many_attempts" and closed.value.retry_after > 0
    # Another owner is not held up; the guessing address is, after 5 failures at any owners.
    for login in ("lee", "x1"):
        with pytest.raises(OperationFailed) as refused:
            accounts.authenticate(world, limiter, login, "bad password 123", "10.0.0.1")
        assert refused.value.code == "invalid_login"
    with pytest.raises(accounts.TooManyAttempts):
        accounts.authenticate(world, limiter, "someone", "bad password 123", "10.0.0.1")


def test_failing_on_purpose_cannot_lock_the_owner_out(world):
    """Failures from other addresses never refuse the owner at theirs: past the owner's ceiling
    sign-in is slowed (the pause asked for), not refused."""
    accounts.set_password(world, "kim", "correct horse battery")
    limiter = LoginLimiter("memory://", per_pair="3/15minutes", owner_ceiling="6/15minutes", slowdown=2.5)
    pauses: list[float] = []
    for attacker in ("10.6.6.1", "10.6.6.2", "10.6.6.3"):
        for _ in range(3):
            with pytest.raises(OperationFailed):
                accounts.authenticate(world, limiter, "kim", "bad password 123", attacker, pause=pauses.append)
        with pytest.raises(accounts.TooManyAttempts):
            accounts.authenticate(world, limiter, "kim", "bad password 123", attacker, pause=pauses.append)
    assert pauses == [2.5] * 3  # the third attacker's attempts, past the ceiling of 6
    pauses.clear()
    assert accounts.authenticate(world, limiter, "kim", "correct horse battery", "192.0.2.7",
                                 pause=pauses.append).id == "kim"
    assert pauses == [2.5]  # slowed, not refused


def test_limiter_storage_follows_the_broker():
    from types import SimpleNamespace

    assert accounts.limiter_storage_uri(SimpleNamespace(broker_url="redis://127.0.0.1:6379/0")) == "redis://127.0.0.1:6379/0"
    assert accounts.limiter_storage_uri(SimpleNamespace(broker_url="sqla+sqlite:///x.db")) == "memory://"


def test_sign_in_goes_on_when_the_counters_store_is_down(world):
    accounts.set_password(world, "kim", "correct horse battery")
    limiter = LoginLimiter("redis://127.0.0.1:1/0")  # nothing listens there
    assert accounts.authenticate(world, limiter, "kim", "correct horse battery", "10.0.0.1").id == "kim"
    with pytest.raises(OperationFailed):
        accounts.authenticate(world, limiter, "kim", "wrong password!!", "10.0.0.1")


def test_login_limits_are_shared_through_redis(world, redis_url):
    url = redis_url  # an emptied Redis database of this test's own
    accounts.set_password(world, "kim", "correct horse battery")
    one, two = LoginLimiter(url, per_pair="2/15minutes"), LoginLimiter(url, per_pair="2/15minutes")
    for limiter in (one, two):  # two web processes, one count
        with pytest.raises(OperationFailed):
            accounts.authenticate(world, limiter, "kim", "wrong password!!", "10.0.0.1")
    with pytest.raises(accounts.TooManyAttempts):
        accounts.authenticate(world, one, "kim", "correct horse battery", "10.0.0.1")
