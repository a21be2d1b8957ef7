"""The route table of results: every URL that names one result, written once.

Everything else about these URLs is derived from ``result_routes()``:

- the URLconf (``compute.api.urls``): the DRF router for the canonical
  routes under ``API_PREFIX`` (its detail regex is built from the same
  ``N_SEGMENT``), ``re_path`` for the old service's routes;
- the WSGI front's matcher (``ResultMatcher``), which recognises a result
  URL before Django resolves it;
- metric and access-log route names (``Route.name`` is the URL name);
- list-item and admin links (``result_path``, which reverses the URL name);
- the schema's grouping (``Route.canonical``);
- which URLs other origins may read and delete (``read_names``,
  ``delete_names``: ``compute.http.cors``).

Pictures derived from a result's inputs (``picture_routes()``: the
convergence picture of pi) live in the same table but are not results:
the URLconf routes them, the WSGI front's matcher never matches them.

``tests/http/test_routes.py`` resolves every route through the URLconf
and through the matcher, under the default and under another API prefix,
and fails if they disagree.

    >>> ResultMatcher(result_routes()).match("/pi")
    (Route(name='seed-pi-query', kind='pi', regex='pi/?', canonical=False, default_n='100'), None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import reverse

from compute.domain.kinds import registry
from compute.domain.kinds.base import SLOTS
from compute.domain.query import ResultQuery

# Where the canonical API lives, relative to the site root.
API_PREFIX = "api/"
# What a path segment holding n may look like before validation (the
# serializer and parse_query decide whether it is a number).
N_SEGMENT = "[^/]+"
# n of /pi?n=N when the query string has none, as in the old service.
DEFAULT_N = "100"


@dataclass(frozen=True, slots=True)
class Route:
    """One URL shape that names a single result."""

    name: str  # the URL name: also the metric and access-log route label
    kind: str  # pi or fib
    regex: str  # relative to the site root, without anchors
    canonical: bool  # the API's own route (else the old service's)
    default_n: str | None = None  # n from ?n= (this default) when the path has none


def result_routes(api_prefix: str = API_PREFIX) -> tuple[Route, ...]:
    """Return every result route, canonical ones first (the URLconf's order)."""
    canonical = tuple(
        Route(f"{kind}-detail", kind, f"{re.escape(api_prefix)}{kind}/(?P<n>{N_SEGMENT})/", True)
        for kind in registry.names()
    )
    # The old Flask service's routes: its two kinds, as it had them (a kind
    # added later has only the canonical route).
    seed = (
        Route("seed-pi", "pi", f"pi/(?P<n>{N_SEGMENT})/?", False),
        Route("seed-fib", "fib", f"fib/(?P<n>{N_SEGMENT})/?", False),
        Route("seed-pi-query", "pi", "pi/?", False, default_n=DEFAULT_N),
    )
    return canonical + tuple(route for route in seed if route.kind in registry.names())


def picture_routes(api_prefix: str = API_PREFIX) -> tuple[Route, ...]:
    """Return the routes of derived pictures (not results: never answered by the front)."""
    return tuple(
        Route(
            kind.picture,
            kind.name,
            f"{re.escape(api_prefix)}{kind.name}/(?P<n>{N_SEGMENT})/convergence/",
            True,
        )
        for kind in registry.kinds()
        if kind.picture is not None
    )


# URL names of the site's reads that are not in the table (SPEC "Browsers on
# other origins"): the site root (the JSON index for programs) and the schema.
# A kind's log list is the DRF router's "<kind>-list" (``list_name``).
SITE_READ_NAMES = ("front", "schema")


def list_name(kind: str) -> str:
    """Return the URL name of ``kind``'s log list (the router's ``<basename>-list``)."""
    return f"{kind}-list"


def read_names(api_prefix: str = API_PREFIX) -> frozenset[str]:
    """Return the URL names of every read other origins may make: results, pictures,
    lists, the site root and the schema."""
    table = (*result_routes(api_prefix), *picture_routes(api_prefix))
    lists = (list_name(kind) for kind in registry.names())
    return frozenset((*(route.name for route in table), *lists, *SITE_READ_NAMES))


def delete_names(api_prefix: str = API_PREFIX) -> frozenset[str]:
    """Return the URL names that take a DELETE: every result route."""
    return frozenset(route.name for route in result_routes(api_prefix))


class ResultMatcher:
    """Recognise a result URL from its path alone, as the URLconf would."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self._compiled = [(re.compile(f"^/{route.regex}$"), route) for route in routes]

    def match(self, path: str) -> tuple[Route, str | None] | None:
        """Return (route, n from the path or None) for a result path, or None."""
        for pattern, route in self._compiled:
            found = pattern.match(path)
            if found is not None:
                return route, found.groupdict().get("n")
        return None


def result_path(query: ResultQuery) -> str:
    """Return the canonical path of ``query``'s result, with the query string naming it."""
    path = reverse(f"{query.kind}-detail", kwargs={"n": str(query.n)})
    params = [f"{slot}={value}" for slot in SLOTS if (value := getattr(query, slot)) is not None]
    if query.as_string:
        params.append("format=string")
    return f"{path}?{'&'.join(params)}" if params else path


def convergence_path(n: int) -> str:
    """Return the path of the convergence picture of pi for ``n``."""
    return reverse("pi-convergence", kwargs={"n": str(n)})
