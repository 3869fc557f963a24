"""Unknown-token rate limiting keeps its counts in Redis when the broker is Redis, so every web
process (and a restarted one) shares them."""
from __future__ import annotations

import pytest

from web.ratelimit import UNKNOWN_TOKENS, TokenLimiter

pytestmark = pytest.mark.integration


def test_two_web_processes_share_one_count_in_redis(redis_url):
    first, second = TokenLimiter(redis_url), TokenLimiter(redis_url)
    for _ in range(UNKNOWN_TOKENS.amount - 1):
        first.record_unknown("203.0.113.7")
    assert not second.blocked("203.0.113.7")
    second.record_unknown("203.0.113.7")
    assert first.blocked("203.0.113.7") and second.blocked("203.0.113.7")
    assert not first.blocked("203.0.113.8")  # per client address


def test_without_redis_the_count_is_per_process(tmp_path):
    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    first, second = TokenLimiter(broker), TokenLimiter(broker)
    for _ in range(UNKNOWN_TOKENS.amount):
        first.record_unknown("203.0.113.7")
    assert first.blocked("203.0.113.7") and not second.blocked("203.0.113.7")


def test_a_redis_that_is_down_serves_pages_rather_than_refusing_everyone():
    limiter = TokenLimiter("redis://127.0.0.1:1/0")
    limiter.record_unknown("203.0.113.7")
    assert not limiter.blocked("203.0.113.7")
