"""The meeting page (`/meeting/<info-token>`) and the Jitsi Meet provider."""
from __future__ import annotations

import re

from services.conferencing import JitsiProvider, build_providers
from services.conferencing.base import MeetingRequest
from services.tokens import make_meeting_token
from tests.unit.web.conftest import book_package, token_of


def info_token(c, session) -> str:
    return session["conferencing_info_url"].rsplit("/", 1)[-1]


def test_jitsi_rooms_are_unguessable_stable_per_session_and_kept_on_a_move(container):
    from datetime import datetime, timezone

    p = JitsiProvider("https://meet.example.org/", "k" * 32)
    req = MeetingRequest("ss_abc", "t", datetime(2026, 12, 7, 14, tzinfo=timezone.utc), 60, "UTC")
    made = p.create(req)
    assert made.join_url == f"https://meet.example.org/{made.external_id}"
    assert re.fullmatch(r"sessionpack-[0-9a-f]{32}", made.external_id)
    assert p.create(req) == made  # a redelivered create gives the same room
    assert JitsiProvider("https://meet.example.org", "other-key" * 4).create(req).external_id != made.external_id
    assert p.create(MeetingRequest("ss_abd", "t", req.start, 60, "UTC")).external_id != made.external_id
    assert p.update(made.external_id, req) is None and p.delete(made.external_id) is None
    assert build_providers(container.settings)["jitsi"].base_url == "https://meet.jit.si"


def test_meeting_page_shows_the_join_link_and_then_cancelled(web, client):
    import uuid

    from services import lifecycle
    from tests.support import drain

    shown = book_package(web, provider="jitsi")
    first = shown["sessions"][0]
    assert "/meeting/" in first["conferencing_info_url"]
    r = client.get(f"/meeting/{info_token(web, first)}")
    assert r.status_code == 200, r.text
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    join = first["conferencing"]["join_url"]
    assert join.startswith("https://meet.jit.si/sessionpack-") and f'href="{join}"' in r.text
    assert "Jitsi Meet" in r.text and r.text.count("<h1") == 1
    # The manage token does not open the meeting page, nor the other way round.
    assert client.get(f"/meeting/{token_of(web, first)}").status_code == 404
    assert client.get(f"/manage/{info_token(web, first)}").status_code == 404
    lifecycle.cancel_sessions(web, [first["id"]], tokens=[token_of(web, first)], change_key=uuid.uuid4().hex)
    drain(web)
    r = client.get(f"/meeting/{info_token(web, first)}")
    assert "This session is cancelled" in r.text and join not in r.text


def test_in_person_sessions_show_the_location(web, client):
    from tests.support import apply_config, package_config

    shown = book_package(web, provider="none")
    config = package_config(3, price="150.00", provider="none")
    config["booking_pages"][0]["event_types"][0]["conferencing"]["location"] = "Studio 4, 12 Main St"
    apply_config(web, config)
    r = client.get(f"/meeting/{info_token(web, shown['sessions'][1])}")
    assert "In person: Studio 4, 12 Main St" in re.sub(r"<[^>]+>", "", r.text)


def test_builtin_room_links_open_a_jitsi_room_until_the_session_is_cancelled(web, client):
    import uuid

    from services import lifecycle
    from tests.support import drain

    shown = book_package(web, provider="builtin")
    first = shown["sessions"][0]
    join = first["conferencing"]["join_url"]
    room = join.rsplit("/", 1)[-1]
    r = client.get(f"/room/{room}")
    assert r.status_code == 307 and r.headers["location"] == f"https://meet.jit.si/sessionpack-room-{room}"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert client.get(f"/room/{'0' * 32}").status_code == 404
    lifecycle.cancel_sessions(web, [first["id"]], tokens=[token_of(web, first)], change_key=uuid.uuid4().hex)
    drain(web)
    assert client.get(f"/room/{room}").status_code == 404
