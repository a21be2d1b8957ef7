"""Load at a worker's start what its first request would otherwise load.

Django imports the URLconf, and through it every view module with DRF,
the serializers and the renderers, on the first request that resolves a
URL: about a second on a busy 2-core machine, paid by the first client of
every new or respawned worker. ``warm_up`` reverses and resolves one URL of
each result route while the worker starts, and starts the worker's
computation processes (``compute.admission.offload``; spawning one costs
about 0.1 s, which its first large computation would otherwise pay).
Nothing is computed in the worker, no database or Redis is touched.
"""

from __future__ import annotations

from django.urls import resolve, reverse

from compute.admission.offload import compute_pool
from compute.http.routes import result_routes


def warm_up() -> int:
    """Resolve a sample URL of every result route, start the computation processes;
    return how many routes resolved."""
    resolved = 0
    for route in result_routes():
        kwargs = {} if route.default_n is not None else {"n": "1"}
        resolve(reverse(route.name, kwargs=kwargs))
        resolved += 1
    compute_pool.start()  # in the background: the worker does not wait for them
    return resolved
