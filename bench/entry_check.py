"""What checking an entry read from Redis costs: the MAC, the decoding, and the round trip.

``python -m bench.entry_check [--repeats N]`` builds the entries mathsite
stores for a few representative results (fib(90) and pi(10**6) as short raw
literals, pi with 1,000 digits, fib(20,000) and fib(1,000,000) as gzip
bodies), then times, per entry, in microseconds (best of 7 rounds):

- ``mac_us``: ``EntrySeal.open``, the keyed MAC's verification (BLAKE2b);
- ``decode_us``: ``Payload.from_redis``, the bounded decompression and the
  content checks of ``compute.domain.plausible`` (before the MAC existed the
  decoding cost the same minus the digit checks);
- ``redis_get_us``: one GET of that entry from an embedded Redis on a unix
  socket, for scale: the MAC is paid once per such read.

In-process hits (``compute.cache.local``) skip all three: an entry is
checked once per process when it enters the tier. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from compute.cache.integrity import EntrySeal
from compute.domain import maths
from compute.domain.payload import Payload, max_entry_bytes
from compute.domain.query import Limits, ResultQuery
from launcher import embedded_redis

QUERIES = {
    "fib(90)": ResultQuery("fib", 90),
    "pi(10**6)": ResultQuery("pi", 10**6),
    "pi(10**6, digits=1000)": ResultQuery("pi", 10**6, digits=1000),
    "fib(20000), gzip": ResultQuery("fib", 20_000),
    "fib(1000000), gzip": ResultQuery("fib", 1_000_000),
}


def best_us(function: Callable[[], object], repeats: int) -> float:
    """Return the best of 7 rounds of ``repeats`` calls, in microseconds per call."""
    rounds = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(repeats):
            function()
        rounds.append((time.perf_counter() - started) / repeats * 1e6)
    return min(rounds)


def text_of(query: ResultQuery) -> str:
    if query.kind == "fib":
        return maths.fib_decimal(query.n)
    if query.digits is not None:
        return maths.pi_digits(query.n, query.digits)
    return repr(maths.pi_double(query.n))


def measure(repeats: int, client: redis.Redis) -> dict[str, dict[str, float | int]]:
    """Return the costs of each entry of ``QUERIES``."""
    seal = EntrySeal(secret=lambda: "bench-secret-" + "x" * 40)
    bound = max_entry_bytes(Limits(10**6, 10**18, 1000, 10**18, 10**18))
    results: dict[str, dict[str, float | int]] = {}
    for name, query in QUERIES.items():
        key = f"bench:1:{query.cache_key}"
        data = Payload.from_text(query, text_of(query)).to_redis()
        entry = seal.seal(key, data)
        client.set(key, entry)
        count = max(20, repeats // (1 + len(entry) // 1000))
        results[name] = {
            "entry_bytes": len(entry),
            "mac_us": round(best_us(lambda: seal.open(key, entry), count), 2),  # noqa: B023
            "decode_us": round(
                best_us(lambda: Payload.from_redis(query, data, max_bytes=bound), count),  # noqa: B023
                2,
            ),
            "redis_get_us": round(best_us(lambda: client.get(key), count), 2),  # noqa: B023
        }
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the JSON costs (a private embedded Redis is started and stopped)."""
    parser = argparse.ArgumentParser(prog="python -m bench.entry_check")
    parser.add_argument("--repeats", type=int, default=5000)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="mathsite-bench-") as folder,
        embedded_redis.running(Path(folder)) as url,
    ):
        client = redis.Redis.from_url(url)
        try:
            results = measure(args.repeats, client)
        finally:
            client.close()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
