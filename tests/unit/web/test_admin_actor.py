"""The activity stream says which owner (or which API key) acted as the administrator: the owner
console's change carries `actor: owner:<id>` under its admin grant, and the worker's task body
(run in this process, its grant checked) records it."""
from __future__ import annotations

from sqlalchemy import select

from models import Activity
from services.console import accounts
from tests.support import drain
from tests.unit.web.conftest import book_package, csrf_of

PASSWORD = "correct horse battery"


def _actors(c, booking_id: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    with c.session_factory() as db:
        for action, actor in db.execute(select(Activity.action, Activity.actor).where(Activity.booking_id == booking_id)):
            found.setdefault(action, set()).add(actor)
    return found


def test_a_console_cancel_records_the_owner(web, client):
    from tests.unit.web.conftest import PUBLIC_TASKS, run_public
    from tests.support import override_tasks

    # refunds too, through their real Celery body and grant check
    override_tasks(web, {"sessionpack.refund_booking": lambda cc, **kw: run_public(cc, "sessionpack.refund_booking", kw)})
    assert "sessionpack.cancel_sessions" in PUBLIC_TASKS
    booking = book_package(web, 3)
    accounts.set_password(web, "kim", PASSWORD)
    login = client.get("/owner/login")
    signed = client.post("/owner/login", data={"login": "kim", "password": PASSWORD, "csrf_token": csrf_of(login.text),
                                               "next": "/owner/activity"})
    assert signed.status_code == 303
    bid, s2 = booking["id"], booking["sessions"][1]["id"]
    page = client.get(f"/owner/bookings/{bid}")
    confirm = client.post(f"/owner/bookings/{bid}/cancel", data={"csrf_token": csrf_of(page.text),
                                                                 "session_ids": [s2], "refund": "none"})
    import re

    change_id = re.search(r'name="change_id" value="([^"]+)"', confirm.text).group(1)
    done = client.post(f"/owner/bookings/{bid}/submit", data={
        "csrf_token": csrf_of(confirm.text), "action": "cancel", "session_ids": [s2], "with_refund": "no",
        "change_id": change_id})
    assert done.status_code == 303
    refund_page = client.get(f"/owner/bookings/{bid}")
    refund_confirm = client.post(f"/owner/bookings/{bid}/refund", data={"csrf_token": csrf_of(refund_page.text),
                                                                        "amount": "1.00", "reason": "goodwill"})
    rid = re.search(r'name="change_id" value="([^"]+)"', refund_confirm.text).group(1)
    client.post(f"/owner/bookings/{bid}/submit", data={"csrf_token": csrf_of(refund_confirm.text), "action": "refund",
                                                       "amount": "1.00", "reason": "goodwill", "change_id": rid})
    drain(web)
    actors = _actors(web, bid)
    assert actors["session.cancelled"] == {"owner:kim"}, actors
    assert actors["refund.requested"] == {"owner:kim"}, actors
    shown = client.get("/owner/activity")
    assert "by owner:kim" in shown.text


def test_a_message_whose_actor_was_bent_is_refused_and_changes_nothing(web):
    """What a broker-side attacker holding one genuine console message could try: name another
    owner. The grant no longer matches; the refusal is recorded as the system's, nothing changes."""
    from services.lifecycle.requests import request_cancel
    from tests.support import claim_next_task
    from tests.unit.web.conftest import run_public

    booking = book_package(web, 2)
    s1 = booking["sessions"][0]["id"]
    request_cancel(web, [s1], admin=True, refund=False, actor="owner:kim")
    name, kwargs = claim_next_task(web)
    answer = run_public(web, name, {**kwargs, "actor": "owner:lee"})
    assert answer["error"]["code"] == "admin_grant_required"
    actors = _actors(web, booking["id"])
    assert "session.cancelled" not in actors and actors["request.refused"] == {"system"}
    assert run_public(web, name, kwargs)["cancelled"] == [s1]
    assert _actors(web, booking["id"])["session.cancelled"] == {"owner:kim"}


def test_an_admin_api_key_is_named_and_the_cli_stays_admin(web, client):
    from services import apikeys
    from services.lifecycle.requests import request_cancel, request_refund
    from tests.support import override_tasks
    from tests.unit.web.conftest import run_public

    override_tasks(web, {"sessionpack.refund_booking": lambda cc, **kw: run_public(cc, "sessionpack.refund_booking", kw)})
    booking = book_package(web, 3)
    with web.uow() as uow:
        key = apikeys.create_key(uow, "ops-desk", [], True, now=web.clock())["key"]
        uow.commit()
    s1, s2 = booking["sessions"][0]["id"], booking["sessions"][1]["id"]
    r = client.post(f"/api/v1/sessions/{s1}/cancel", headers={"Authorization": f"Bearer {key}"},
                    json={"refund": False})
    assert r.status_code == 202, r.text
    r = client.post(f"/api/v1/bookings/{booking['id']}/refunds", headers={"Authorization": f"Bearer {key}"},
                    json={"amount": "1.00", "refund_id": "api-1"})
    assert r.status_code == 202, r.text
    drain(web)
    request_cancel(web, [s2], admin=True, refund=False)  # the CLI's --admin: no actor named
    request_refund(web, booking["id"], "2.00", refund_id="cli-1")
    drain(web)
    with web.session_factory() as db:
        rows = db.execute(select(Activity.action, Activity.session_id, Activity.actor, Activity.details)
                          .where(Activity.booking_id == booking["id"])).all()
    by_session = {sid: actor for action, sid, actor, _ in rows if action == "session.cancelled"}
    assert by_session == {s1: "apikey:ops-desk", s2: "admin"}
    refunds = {d.get("change"): actor for action, _, actor, d in rows if action == "refund.requested"}
    assert refunds.get("rf-api-1") == "apikey:ops-desk" and refunds.get("rf-cli-1") == "admin", rows
