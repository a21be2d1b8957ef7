"""The old Flask service, re-created from its description as the benchmark baseline.

This is deliberately the service mathsite replaces, flaws included, so the
benchmark compares against what clients had: a module-level Redis client,
one Redis hash per kind holding decimal strings (``HGET``/``HSET``),
``if result:`` checks (a stored 0 or 0.0 counts as a miss), the float loop
for pi (O(n) time, accumulated rounding) and the recursive cached fib
(every fib(k) below n goes through the hash; Python's recursion limit stops
it near n = 1000, and the JSON encoder's 4,300-digit int limit would stop
it at larger n anyway).

Configuration (environment, read at import as the original did):
``SEED_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and
``SEED_KEY_PREFIX`` (default ``seed``): the hashes are ``<prefix>:pi`` and
``<prefix>:fib``. Serve with ``gunicorn bench.seed_service.app:app``.
"""

from __future__ import annotations

import os
from math import sqrt

import redis
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)
r = redis.Redis.from_url(os.environ.get("SEED_REDIS_URL", "redis://127.0.0.1:6379/0"))
PREFIX = os.environ.get("SEED_KEY_PREFIX", "seed")
PI_HASH = f"{PREFIX}:pi"
FIB_HASH = f"{PREFIX}:fib"


def compute_pi(n: int) -> float:
    """Return the Basel approximation by the old float loop (terms 1 .. n-1)."""
    s = 0.0
    for i in range(1, n):
        s += 1.0 / i / i
    return sqrt(6 * s)


def fib(n: int) -> int:
    """Return fib(n), recursively, caching every fib(k) in the hash (the old way)."""
    result = int(r.hget(FIB_HASH, n) or 0)
    if result:
        return result
    result = n if n < 2 else fib(n - 1) + fib(n - 2)
    r.hset(FIB_HASH, n, result)
    return result


@app.route("/pi/<int:n>")
def pi_route(n: int) -> ResponseReturnValue:
    """Return pi(n), from the hash when it holds a truthy value."""
    result = float(r.hget(PI_HASH, n) or 0)
    if result:
        return jsonify(cached=True, result=result)
    result = compute_pi(n)
    r.hset(PI_HASH, n, result)
    return jsonify(cached=False, result=result)


@app.route("/pi")
def pi_query_route() -> ResponseReturnValue:
    """Return pi(n) for ``?n=N`` (default 100)."""
    return pi_route(request.args.get("n", 100, type=int))


@app.route("/fib/<int:n>")
def fib_route(n: int) -> ResponseReturnValue:
    """Return fib(n), from the hash when it holds a truthy value."""
    result = int(r.hget(FIB_HASH, n) or 0)
    if result:
        return jsonify(cached=True, result=result)
    return jsonify(cached=False, result=fib(n))
