
import pytest
from hypothesis import given, strategies as st

from services.errors import InvalidInput
from services.money import allocate, format_amount, parse_amount, percent_of


def test_relative_cost_examples_from_the_contract():
    assert allocate(80000, 10) == [8000] * 10
    assert allocate(15000, 3) == [5000, 5000, 5000]
    assert allocate(10000, 3) == [3334, 3333, 3333]


def test_parse_and_format_round_trip():
    assert parse_amount("800.00") == 80000
    assert parse_amount("12.5") == 1250
    assert format_amount(1250) == "12.50"
    assert format_amount(5) == "0.05"
    assert parse_amount("3000", "JPY") == 3000
    assert format_amount(3000, "JPY") == "3000"


@pytest.mark.parametrize("bad", ["-1", "abc", "1.234", "NaN", "inf", ""])
def test_parse_refuses_bad_amounts(bad):
    with pytest.raises(InvalidInput) as err:
        parse_amount(bad)
    assert err.value.code == "invalid_amount"


def test_percent_rounds_half_up_and_never_exceeds_the_amount():
    assert percent_of(5000, 50) == 2500
    assert percent_of(5000, 10) == 500
    assert percent_of(3333, 50) == 1667
    assert percent_of(1, 100) == 1


@given(total=st.integers(0, 10_000_000), parts=st.integers(1, 20))
def test_allocation_adds_up_and_differs_by_at_most_a_cent(total, parts):
    costs = allocate(total, parts)
    assert sum(costs) == total
    assert max(costs) - min(costs) <= 1
    assert costs == sorted(costs, reverse=True)


@given(total=st.integers(0, 10_000_000), parts=st.integers(1, 20),
       percent=st.decimals(0, 100, places=2))
def test_percentages_of_every_part_never_exceed_the_price(total, parts, percent):
    refunds = [percent_of(c, percent) for c in allocate(total, parts)]
    assert sum(refunds) <= total
    assert all(0 <= r <= c for r, c in zip(refunds, allocate(total, parts)))

