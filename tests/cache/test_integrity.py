"""Entry integrity against a real Redis: what fails the MAC or the checks is never served.

Mirrors ``compute/cache/integrity.py`` (the MAC and the rejection report) and
the store's read path that uses it. Entries are planted with a raw client,
either as issue 11's attacker wrote them (no MAC) or with a MAC computed by
the test from the documented format (``tests/support/entries.py``): an
attacker who knows the secret still gets nothing served that is not the
query's result, and no zip bomb through.
"""

from __future__ import annotations

import logging
import os
import time
import tracemalloc

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from compute import services
from compute.cache import MISSING, result_cache
from compute.cache.integrity import EntrySeal
from compute.domain.payload import FORGED, MALFORMED, MISMATCH, OVERSIZED, UnfitEntry
from compute.domain.query import ResultQuery
from compute.models import ComputedResult
from tests.support.caches import PointedCache
from tests.support.callers import SETUP
from tests.support.entries import ATTACKS, mac_of, sign, unsigned, zeros_gzip
from tests.support.figures import record
from tests.support.junk import WRONG_TYPES, plant
from tests.support.reference import fib_reference

pytestmark = pytest.mark.django_db


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("mathsite_cache_rejected_total", {"reason": reason}) or 0.0


def full_key(query: ResultQuery) -> str:
    return result_cache.make_key(query.cache_key)


def never_compute(query: ResultQuery) -> str:
    raise AssertionError(f"{query} was recomputed")


# --- the MAC ---------------------------------------------------------------------------


def test_the_seal_is_the_documented_mac():
    seal = EntrySeal(secret=lambda: "a deployment secret")
    entry = seal.seal("p:1:fib:10:fmt2", b"r55")
    assert entry == b"r55" + mac_of("a deployment secret", "p:1:fib:10:fmt2", b"r55")
    assert seal.open("p:1:fib:10:fmt2", entry) == b"r55"


@pytest.mark.parametrize(
    ("key", "secret", "entry", "reason"),
    [
        ("p:1:fib:11:fmt2", "a deployment secret", None, FORGED),  # copied to another key
        ("p:1:fib:10:fmt2", "another deployment", None, FORGED),  # a neighbour's secret
        ("p:1:fib:10:fmt2", "a deployment secret", b"r56" + bytes(16), FORGED),  # made up
        ("p:1:fib:10:fmt2", "a deployment secret", b"r55", MALFORMED),  # no room for a MAC
        ("p:1:fib:10:fmt2", "a deployment secret", b"", MALFORMED),
    ],
)
def test_an_entry_opens_only_under_its_key_and_its_deployments_secret(key, secret, entry, reason):
    written = EntrySeal(secret=lambda: "a deployment secret").seal("p:1:fib:10:fmt2", b"r55")
    with pytest.raises(UnfitEntry) as caught:
        EntrySeal(secret=lambda: secret).open(key, written if entry is None else entry)
    assert caught.value.reason == reason


def test_cache_signing_key_replaces_the_secret_key(settings, redis_client):
    query = ResultQuery("fib", 40)
    services.result_get(caller=SETUP, query=query)  # written under SECRET_KEY's derivation
    settings.CACHE_SIGNING_KEY = "k" * 40
    before = rejected(FORGED)
    assert result_cache.get_shared(query) is MISSING  # the old secret's entry fails
    assert rejected(FORGED) - before == 1
    result_cache.local.clear()  # as in another process: this one still holds the value
    services.result_get(caller=SETUP, query=query, compute=never_compute)  # refilled from the log
    entry = redis_client.get(full_key(query))
    data = unsigned(full_key(query), entry, secret="k" * 40)
    assert data == b"r" + str(fib_reference(40)).encode()


# --- the read path -----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "n", "digits", "path", "data"), ATTACKS)
@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("as written in the issue", None),  # malformed or bad_mac: no MAC at all
        ("with a made-up MAC", FORGED),
        ("signed by an attacker who knows the secret", MISMATCH),
    ],
)
def test_planted_values_are_discarded_and_refilled_from_the_log(
    redis_client, kind, n, digits, path, data, how, reason
):
    query = ResultQuery(kind, n, digits=digits)
    computed = services.result_get(caller=SETUP, query=query)
    key = full_key(query)
    planted = {
        "as written in the issue": data,
        "with a made-up MAC": data + os.urandom(16),
        "signed by an attacker who knows the secret": sign(key, data),
    }[how]
    expected_reason = reason or (MALFORMED if len(data) <= 16 else FORGED)
    redis_client.set(key, planted)
    before = rejected(expected_reason)
    fresh = PointedCache()  # another process: nothing in its in-process tier
    assert fresh.get(query) is MISSING
    assert rejected(expected_reason) - before == 1
    assert redis_client.exists(key) == 0  # discarded
    outcome = services.result_get(caller=SETUP, query=query, cache=fresh, compute=never_compute)
    assert outcome.cached is True
    assert outcome.payload.literal == computed.payload.literal
    assert unsigned(key, redis_client.get(key)) == computed.payload.to_redis()  # refilled


@pytest.mark.parametrize("junk", WRONG_TYPES)
def test_an_entry_of_another_type_is_discarded_not_an_outage(redis_client, junk):
    """GET of a hash (or a list...) is refused by Redis with WRONGTYPE: a malformed
    entry, discarded and refilled like any other, never a reason to open the breaker."""
    query = ResultQuery("fib", 60)
    computed = services.result_get(caller=SETUP, query=query)
    key = full_key(query)
    plant(redis_client, key, junk)
    before = rejected(MALFORMED)
    fresh = PointedCache()
    assert fresh.get(query) is MISSING
    assert fresh.available
    assert rejected(MALFORMED) - before == 1
    assert redis_client.exists(key) == 0  # discarded
    outcome = services.result_get(caller=SETUP, query=query, cache=fresh, compute=never_compute)
    assert outcome.cached is True and outcome.payload.text == computed.payload.text
    assert unsigned(key, redis_client.get(key)) == computed.payload.to_redis()  # refilled


def test_a_valid_entry_copied_to_another_key_is_refused(redis_client):
    services.result_get(caller=SETUP, query=ResultQuery("fib", 30))
    target = ResultQuery("fib", 31)
    services.result_get(caller=SETUP, query=target)  # logged: the refill has a row to come from
    redis_client.set(full_key(target), redis_client.get(full_key(ResultQuery("fib", 30))))
    before = rejected(FORGED)
    fresh = PointedCache()
    outcome = services.result_get(caller=SETUP, query=target, cache=fresh, compute=never_compute)
    assert outcome.payload.text == str(fib_reference(31))
    assert rejected(FORGED) - before == 1


def test_a_planted_value_for_an_uncomputed_result_is_computed_instead(redis_client):
    query = ResultQuery("fib", 20)
    redis_client.set(full_key(query), sign(full_key(query), b"r6766"))
    outcome = services.result_get(caller=SETUP, query=query)
    assert (outcome.cached, outcome.payload.text) == (False, "6765")
    assert ComputedResult.objects.filter(kind="fib", n=20).count() == 1


def test_an_entry_of_the_previous_format_is_never_read(redis_client):
    old_key = result_cache.make_key("fib:20")  # format 1: no fmt suffix, no MAC
    redis_client.set(old_key, b"r6766")
    counts = [rejected(reason) for reason in (MALFORMED, FORGED, OVERSIZED, MISMATCH)]
    outcome = services.result_get(caller=SETUP, query=ResultQuery("fib", 20))
    assert (outcome.cached, outcome.payload.text) == (False, "6765")
    assert [rejected(reason) for reason in (MALFORMED, FORGED, OVERSIZED, MISMATCH)] == counts
    assert redis_client.get(old_key) == b"r6766"  # not even looked at


def test_each_reason_is_logged_once_per_process(redis_client, caplog):
    caplog.set_level(logging.WARNING, logger="compute.cache")
    for n in (50, 51, 52):
        query = ResultQuery("fib", n)
        redis_client.set(full_key(query), b"r" + b"1" * 20 + bytes(16))
        assert result_cache.get_shared(query) is MISSING
    query = ResultQuery("fib", 53)
    redis_client.set(full_key(query), b"junk")
    assert result_cache.get_shared(query) is MISSING
    warnings = [r.getMessage() for r in caplog.records if "Discarding cache entry" in r.message]
    assert len(warnings) == 2
    assert "fib:50:fmt2 (bad_mac" in warnings[0]
    assert "fib:53:fmt2 (malformed" in warnings[1]


# --- bounded decompression ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return b"z" + zeros_gzip(300)  # 300 MB of zeros in about 290 kB


@pytest.mark.parametrize(("signed", "reason"), [(True, OVERSIZED), (False, FORGED)])
def test_a_zip_bomb_is_refused_in_milliseconds_with_bounded_memory(
    redis_client, bomb, signed, reason, request
):
    query = ResultQuery("fib", 30003)
    key = full_key(query)
    redis_client.set(key, sign(key, bomb) if signed else bomb + bytes(16))
    before = rejected(reason)
    tracemalloc.start()
    started = time.perf_counter()
    found = result_cache.get_shared(query)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found is MISSING
    assert rejected(reason) - before == 1
    label = "signed" if signed else "unsigned"
    record(request, f"300 MB zip bomb ({label}) refused in", round(seconds * 1000, 2), "ms")
    record(request, f"300 MB zip bomb ({label}) peak memory", round(peak / 2**20, 2), "MiB")
    # Unbounded (before): 0.9 s and 300 MB. The bound is about 0.47 MB.
    assert seconds < 0.1
    assert peak < 4 * 1024 * 1024


def test_a_huge_stored_value_is_refused_before_it_is_hashed(redis_client):
    seal = EntrySeal(secret=lambda: "a deployment secret")
    huge = b"r" + b"7" * (64 << 20)  # 64 MB: hashing it would take tens of ms
    started = time.perf_counter()
    with pytest.raises(UnfitEntry) as caught:
        seal.open("p:1:fib:20:fmt2", huge, max_bytes=471_261)
    assert time.perf_counter() - started < 0.005
    assert caught.value.reason == OVERSIZED
    query = ResultQuery("fib", 20)
    redis_client.set(full_key(query), b"r" + b"7" * (2 << 20))
    before = rejected(OVERSIZED)
    assert result_cache.get_shared(query) is MISSING
    assert rejected(OVERSIZED) - before == 1


def test_the_entry_bound_is_configurable(redis_client):
    query = ResultQuery("fib", 30_000)  # a 6,270-digit body, stored gzip-compressed
    services.result_get(caller=SETUP, query=query)
    with override_settings(CACHE_MAX_ENTRY_BYTES=4096):
        before = rejected(OVERSIZED)
        assert PointedCache().get(query) is MISSING
        assert rejected(OVERSIZED) - before == 1
    result_cache.local.clear()  # as in another process: this one still holds the value
    services.result_get(caller=SETUP, query=query, compute=never_compute)
    assert PointedCache().get(query) is not MISSING
