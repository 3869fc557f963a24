"""The configuration rules: every session-package conflict is refused with the settings named."""
import copy

import pytest

from services.config import parse_config
from services.errors import InvalidInput
from tests.support import example_config


def _event(cfg):
    return cfg["booking_pages"][0]["event_types"][0]


def refused(cfg) -> str:
    with pytest.raises(InvalidInput) as err:
        parse_config(cfg)
    assert err.value.exit_code == 2
    return err.value.message


def test_the_contract_example_is_accepted():
    config = parse_config(example_config())
    et = config.booking_pages[0].event_types[0]
    assert et.scheduling.sessions_per_booking == 10
    assert et.payment.price == "800.00"


@pytest.mark.parametrize("change, named", [
    ({"booking_mode": "manual"}, ["sessions_per_booking: 10", "booking_mode: automatic"]),
    ({"pooled_availability": True}, ["sessions_per_booking: 10", "pooled_availability"]),
    ({"max_bookings_per_day": 3}, ["sessions_per_booking: 10", "max_bookings_per_day"]),
    ({"max_bookings_per_week": 5}, ["sessions_per_booking: 10", "max_bookings_per_week"]),
    ({"sessions_per_booking": 21}, ["sessions_per_booking is 21", "1..20"]),
    ({"sessions_per_booking": 0}, ["sessions_per_booking is 0", "1..20"]),
])
def test_package_rules_name_the_conflicting_settings(change, named):
    cfg = example_config()
    _event(cfg)["scheduling"].update(change)
    message = refused(cfg)
    for fragment in named:
        assert fragment in message
    assert "consult-10" in message and "nothing was written" in message


def test_every_problem_is_reported_at_once():
    cfg = example_config()
    _event(cfg)["scheduling"].update({"booking_mode": "manual", "pooled_availability": True, "max_bookings_per_day": 2})
    message = refused(cfg)
    assert "booking_mode" in message and "pooled_availability" in message and "max_bookings_per_day" in message
    assert "payment requires scheduling.booking_mode: automatic" in message


def test_single_sessions_may_use_manual_mode_and_limits():
    cfg = example_config()
    et = _event(cfg)
    et["scheduling"].update({"sessions_per_booking": 1, "booking_mode": "manual", "max_bookings_per_day": 2})
    del et["payment"]
    parse_config(cfg)


@pytest.mark.parametrize("path, value, fragment", [
    (("policies", "cancel", "refund_percent"), 150, "refund_percent is 150"),
    (("policies", "reschedule", "fee_percent"), -5, "fee_percent is -5"),
])
def test_percentages_are_0_to_100(path, value, fragment):
    cfg = example_config()
    node = _event(cfg)
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert fragment in refused(cfg)


def test_payment_only_on_event_types():
    cfg = example_config()
    page = cfg["booking_pages"][0]
    page["payment"] = {"price": "10.00", "currency": "USD"}
    assert "payment is allowed on event types only" in refused(cfg)


def test_unknown_timezone_duplicate_slugs_and_bad_values():
    cfg = example_config()
    cfg["owners"][0]["timezone"] = "Mars/Olympus"
    assert "unknown timezone 'Mars/Olympus'" in refused(cfg)

    cfg = example_config()
    cfg["booking_pages"].append(copy.deepcopy(cfg["booking_pages"][0]))
    assert "duplicate slug 'dana'" in refused(cfg)

    cfg = example_config()
    cfg["booking_pages"][0]["event_types"].append(copy.deepcopy(_event(cfg)))
    assert "duplicate event type slug 'consult-10'" in refused(cfg)

    cfg = example_config()
    cfg["booking_pages"][0]["availability"]["weekly"]["mon"] = [["17:00", "09:00"]]
    assert "end before they start" in refused(cfg)

    cfg = example_config()
    _event(cfg)["conferencing"]["provider"] = "skype"
    assert "conferencing.provider" in refused(cfg)

    cfg = example_config()
    _event(cfg)["payment"]["price"] = "8.005"
    assert "more than 2 decimals" in refused(cfg)

    cfg = example_config()
    _event(cfg)["colour"] = "blue"
    assert "colour" in refused(cfg)


def test_a_page_without_event_types_carries_the_fields_itself():
    cfg = example_config()
    page = cfg["booking_pages"][0]
    del page["event_types"]
    assert "duration_minutes is required" in refused(cfg)
    page["duration_minutes"] = 45
    page["scheduling"] = {"sessions_per_booking": 4}
    parse_config(cfg)
