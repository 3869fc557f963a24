"""Grants (services/grants.py) and the public tasks' typed arguments (tasks/args.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.errors import InvalidInput
from services.grants import GrantRefused, canonical_args, make_grant, verify_grant

KEY = "grant-test-key-" + "x" * 32
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
TASK = "sessionpack.refund_booking"
ARGS = {"booking_id": "bk_abc", "amount": "12.50", "admin": True, "refund_id": "r1"}


def signed(args=ARGS, task=TASK, role="admin", now=NOW, key=KEY, **kw):
    return {**args, "grant": make_grant(key, task, args, role=role, now=now, **kw)}


def test_a_grant_verifies_for_its_task_arguments_and_role():
    grant = verify_grant(KEY, TASK, signed(), now=NOW, role="admin")
    assert grant.admin and grant.expires == int(NOW.timestamp()) + 30 * 60


@pytest.mark.parametrize("change", [
    lambda m: m.update(amount="1200.00"),
    lambda m: m.update(booking_id="bk_other"),
    lambda m: m.update(extra="x"),
    lambda m: m.pop("refund_id"),
    lambda m: m.update(admin="true"),
    lambda m: m.update(grant=m["grant"][:-2] + ("AA" if not m["grant"].endswith("AA") else "BB")),
    lambda m: m.update(grant=m["grant"].replace(".admin.", ".customer.")),
    lambda m: m.update(grant=m["grant"].replace(m["grant"].split(".")[2], str(int(m["grant"].split(".")[2]) + 999))),
])
def test_any_change_to_the_message_breaks_the_grant(change):
    message = signed()
    change(message)
    with pytest.raises(GrantRefused) as err:
        verify_grant(KEY, TASK, message, now=NOW, role="admin")
    assert err.value.code == "admin_grant_required" and message["grant"] not in err.value.message


def test_another_task_another_key_another_role_or_expiry_is_refused():
    with pytest.raises(GrantRefused):
        verify_grant(KEY, "sessionpack.cancel_sessions", signed(), now=NOW)
    with pytest.raises(GrantRefused):
        verify_grant(KEY, TASK, signed(key="another-key-" + "y" * 30), now=NOW)
    with pytest.raises(GrantRefused):
        verify_grant(KEY, TASK, signed(role="customer"), now=NOW, role="admin")
    with pytest.raises(GrantRefused) as err:
        verify_grant(KEY, TASK, signed(ttl_minutes=5), now=NOW + timedelta(minutes=6))
    assert "expired" in err.value.message
    verify_grant(KEY, TASK, signed(ttl_minutes=5), now=NOW + timedelta(minutes=4))


@pytest.mark.parametrize("junk", [None, "", 42, "g1.admin", "g1.admin.x.y", "g2.admin.1.sig", "g1.root.1.sig",
                                  "g1.admin.1." + "é" * 10, "g1.admin.1." + "a" * 300])
def test_missing_or_malformed_grants_are_refused(junk):
    with pytest.raises(GrantRefused) as err:
        verify_grant(KEY, TASK, {**ARGS, "grant": junk}, now=NOW, role="admin", code="admin_grant_required")
    assert err.value.code == "admin_grant_required"


def test_canonical_arguments_ignore_order_none_and_the_grant():
    assert canonical_args({"b": 1, "a": [1, 2], "c": None, "grant": "g"}) == b'{"a":[1,2],"b":1}'


# -- typed task arguments ----------------------------------------------------------------------


def parse(task, **kwargs):
    from tasks.args import parse as parse_args

    return parse_args(task, (), kwargs)


@pytest.mark.parametrize("admin", ["false", "no", "true", 1, 0, None, [], {}])
def test_admin_is_json_true_or_false_only(admin):
    with pytest.raises(InvalidInput) as err:
        parse("sessionpack.cancel_sessions", session_ids=["ss_a"], admin=admin)
    assert err.value.code == "invalid_request" and "admin" in err.value.message


def test_unknown_keys_positional_arguments_and_long_strings_are_refused():
    from tasks.args import parse as parse_args

    with pytest.raises(InvalidInput, match="unknown argument 'is_admin'"):
        parse("sessionpack.cancel_sessions", session_ids=["ss_a"], is_admin=True)
    with pytest.raises(InvalidInput, match="keyword arguments only"):
        parse_args("sessionpack.refund_booking", ("bk_a", "1.00"), {})
    with pytest.raises(InvalidInput):
        parse("sessionpack.reschedule_session", session_id="ss_a", to="x" * 65)
    with pytest.raises(InvalidInput):
        parse("sessionpack.cancel_sessions", session_ids=["ss_a"], tokens=["t" * 201])
    with pytest.raises(InvalidInput):
        parse("sessionpack.refund_booking", booking_id="bk_a", amount=12.5)
    with pytest.raises(InvalidInput):
        parse("sessionpack.refund_booking", booking_id="bk_a", amount="1.00", refund_id="no spaces")
    secret = "ss_abc.SECRETSIGNATURE0123456789"
    with pytest.raises(InvalidInput) as err:
        parse("sessionpack.cancel_sessions", session_ids=["ss_a"], tokens=[secret], admin="yes")
    assert secret not in err.value.message


def test_valid_arguments_parse():
    a = parse("sessionpack.cancel_sessions", session_ids=["ss_a", "ss_b"], tokens=["t1", "t2"], refund=False,
              reason="ill", change_id="ch_1")
    assert a.ids == ["ss_a", "ss_b"] and a.admin is False and a.refund is False
    assert parse("sessionpack.approve_booking", booking_id="bk_a").admin is True


def test_the_change_key_is_the_refund_id_then_the_change_id_then_the_task_id():
    from tasks.args import change_key_of

    assert change_key_of("t1", parse("sessionpack.refund_booking", booking_id="bk", amount="1", refund_id="x")) == "rf-x"
    assert change_key_of("t1", parse("sessionpack.approve_booking", booking_id="bk", change_id="ap_1")) == "ap_1"
    assert change_key_of("t1", parse("sessionpack.approve_booking", booking_id="bk")) == "t1"


@pytest.mark.parametrize("args,kwargs", [((), {}), (("a", "b"), {}), (([1],), {}), ((), {"req": {}}),
                                         (({"a": 1},), {"request": {}}), (({"x": "y" * 70000},), {})])
def test_submit_booking_takes_one_request_object(args, kwargs):
    from tasks.args import parse_submit

    with pytest.raises(InvalidInput):
        parse_submit(args, kwargs)
    assert parse_submit(({"request_id": "r"},), {}) == {"request_id": "r"}
    assert parse_submit((), {"request": {"request_id": "r"}}) == {"request_id": "r"}


# -- who acted as the administrator (the `actor` argument, bound by the admin grant) -------------


def test_the_grant_binds_the_administrators_actor():
    """The owner console names the owner; a message whose actor was bent on the broker (another
    owner, a bare `admin`, or the actor dropped) no longer matches its grant."""
    args = {**ARGS, "actor": "owner:kim"}
    message = signed(args)
    assert verify_grant(KEY, TASK, message, now=NOW, role="admin").admin
    for bent in ({**message, "actor": "owner:lee"}, {**message, "actor": "admin"},
                 {k: v for k, v in message.items() if k != "actor"}):
        with pytest.raises(GrantRefused) as err:
            verify_grant(KEY, TASK, bent, now=NOW, role="admin")
        assert err.value.code == "admin_grant_required"
    # and the reverse: an actor added to a message granted without one
    with pytest.raises(GrantRefused):
        verify_grant(KEY, TASK, {**signed(), "actor": "owner:kim"}, now=NOW, role="admin")


def test_actor_is_typed_and_only_for_the_administrator():
    from tasks.args import authorize

    assert parse(TASK, **ARGS, actor="apikey:web-frontend").actor == "apikey:web-frontend"
    for junk in ("root", "owner:", "owner:kim lee", "apikey:" + "k" * 60, 7, "customer"):
        with pytest.raises(InvalidInput):
            parse(TASK, **ARGS, actor=junk)

    class C:  # authorize needs only the key and the clock
        settings = type("S", (), {"secret_key": KEY})()
        clock = staticmethod(lambda: NOW)

    cancel = {"session_ids": ["ss_a"], "actor": "owner:kim"}
    cancel["grant"] = make_grant(KEY, "sessionpack.cancel_sessions", cancel, role="customer", now=NOW)
    with pytest.raises(InvalidInput, match="only with an admin grant"):
        authorize(C(), "sessionpack.cancel_sessions", cancel, parse("sessionpack.cancel_sessions", **cancel))
    admin = {**ARGS, "actor": "owner:kim"}
    admin["grant"] = make_grant(KEY, TASK, admin, role="admin", now=NOW)
    assert authorize(C(), TASK, admin, parse(TASK, **admin)) == (True, False)


def test_admin_actor_names_fit_the_stream():
    from services.lifecycle.access import actor_of, admin_actor

    assert admin_actor("owner", "kim") == "owner:kim"
    assert admin_actor("apikey", "web-frontend") == "apikey:web-frontend"
    long_a, long_b = admin_actor("apikey", "k" * 99 + "a"), admin_actor("apikey", "k" * 99 + "b")
    assert len(long_a) <= 64 and long_a != long_b and long_a.startswith("apikey:kkk")
    assert admin_actor("owner", "kim lee").startswith("owner:kim_lee~")
    assert actor_of(True) == "admin" and actor_of(True, "owner:kim") == "owner:kim"
    assert actor_of(False, "owner:kim") == "customer" and actor_of(True, "root") == "admin"
