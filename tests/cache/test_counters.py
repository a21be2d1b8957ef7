"""The throttle's windowed counter (``compute.cache.counters``) in the run's real Redis.

Counted through ``ResultCache.count_hit``, as the compute throttle counts.
Junk under the counter (written with the raw client) used to make ``INCR``
fail, which opened the breaker for every request of the process; now the
count's own script resets it, counts it in /metrics and moves on.
"""

from __future__ import annotations

import pytest

from compute.cache import result_cache
from tests.support.junk import JUNK, junk_id, malformed_count, plant

WINDOW = 60


def test_a_count_starts_at_one_and_expires_with_its_window(redis_client):
    key = "throttle:compute:198.51.100.1:1"
    assert [result_cache.count_hit(key, WINDOW) for _ in range(3)] == [1, 2, 3]
    full = result_cache.make_key(key)
    assert redis_client.get(full) == b"3"
    assert 0 < redis_client.ttl(full) <= WINDOW + 1


@pytest.mark.parametrize("junk", JUNK, ids=junk_id)
def test_junk_under_a_counter_is_reset_and_the_breaker_stays_closed(redis_client, junk):
    key = "throttle:compute:198.51.100.2:1"
    full = result_cache.make_key(key)
    plant(redis_client, full, junk)
    before = malformed_count("throttle")
    assert result_cache.count_hit(key, WINDOW) == 1  # counted from nothing
    assert result_cache.available  # a refusal by Redis about one key is not an outage
    assert malformed_count("throttle") - before == 1
    assert redis_client.get(full) == b"1" and 0 < redis_client.ttl(full) <= WINDOW + 1
    assert result_cache.count_hit(key, WINDOW) == 2
    assert malformed_count("throttle") - before == 1


def test_a_well_formed_hostile_count_lasts_only_its_window(redis_client):
    """Set high and without an expiry: the next count sets the expiry again, so it ends
    with its window (and the next window is another key)."""
    key = "throttle:compute:198.51.100.3:1"
    full = result_cache.make_key(key)
    redis_client.set(full, 10**6)
    assert result_cache.count_hit(key, WINDOW) == 10**6 + 1
    assert 0 < redis_client.ttl(full) <= WINDOW + 1
    assert result_cache.available
