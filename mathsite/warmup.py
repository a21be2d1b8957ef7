"""Load at a worker's start what its first request would otherwise load.

Django imports the URLconf, and through it every view module with DRF,
the serializers and the renderers, on the first request that resolves a
URL: about a second on a busy 2-core machine, paid by the first client of
every new or respawned worker. ``warm_up`` reverses and resolves one URL of
each result route while the worker starts; nothing is computed, no
database or Redis is touched.
"""

from __future__ import annotations

from django.urls import resolve, reverse

from compute.http.routes import result_routes


def warm_up() -> int:
    """Reverse and resolve a sample URL of every result route; return how many resolved."""
    resolved = 0
    for route in result_routes():
        kwargs = {} if route.default_n is not None else {"n": "1"}
        resolve(reverse(route.name, kwargs=kwargs))
        resolved += 1
    return resolved
