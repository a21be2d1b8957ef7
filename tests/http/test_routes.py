"""The route table against the URLconf: the matcher and Django agree on every result URL.

The URLconf is built from the table (``compute.api.urls``) and so is the
WSGI front's matcher; here both are built for the default API prefix and
for another one, and every path is resolved by Django and matched by the
matcher: same route name, same kind, same n, or neither.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.urls import URLResolver, get_resolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern

from compute.api.urls import api_urlpatterns, seed_urlpatterns
from compute.api.views import ResultViewSet
from compute.domain.query import ResultQuery
from compute.http.routes import API_PREFIX, ResultMatcher, result_path, result_routes


def django_answer(resolver: URLResolver, path: str):
    """Return (route name, kind, n) Django resolves ``path`` to if a result view; else None."""
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return None
    view = getattr(match.func, "cls", None)
    actions = getattr(match.func, "actions", {})
    if not (isinstance(view, type) and issubclass(view, ResultViewSet)):
        return None
    if actions.get("get") != "retrieve":
        return None  # the list route
    return match.url_name, view.kind, match.kwargs.get("n")


def matcher_answer(matcher: ResultMatcher, path: str):
    found = matcher.match(path)
    if found is None:
        return None
    route, n = found
    return route.name, route.kind, n


def paths_for(prefix: str) -> list[str]:
    """Paths around every route: exact, without slashes, extra segments, other prefixes."""
    paths = []
    for kind in ("pi", "fib"):
        for base in (f"/{prefix}{kind}", f"/{kind}", f"/api/{kind}", f"/v2/{kind}"):
            paths += [
                f"{base}/",
                base,
                f"{base}/12/",
                f"{base}/12",
                f"{base}/012/",
                f"{base}/-1/",
                f"{base}/1.5/",
                f"{base}/12/x/",
                f"{base}//",
                f"{base}/12//",
            ]
    paths += ["/", "/pi?n=3", "/piano", "/fibs/1", "/healthz", f"/{prefix}", f"/{prefix}schema/"]
    return paths


@pytest.mark.parametrize("prefix", [API_PREFIX, "v2/", "x/y/"])
def test_matcher_and_urlconf_agree_on_every_result_path(prefix):
    urlconf = SimpleNamespace(urlpatterns=[*api_urlpatterns(prefix), *seed_urlpatterns(prefix)])
    resolver = URLResolver(RegexPattern(r"^/"), urlconf)
    matcher = ResultMatcher(result_routes(prefix))
    answered = 0
    for path in paths_for(prefix):
        expected = django_answer(resolver, path.split("?")[0])
        assert matcher_answer(matcher, path.split("?")[0]) == expected, path
        answered += expected is not None
    assert answered >= 8  # the canonical and seed routes of both kinds were exercised


def test_every_route_of_the_table_is_in_the_site_urlconf():
    resolver = get_resolver()
    names = {route.name for route in result_routes()}
    for route in result_routes():
        assert route.name in resolver.reverse_dict, route.name

    # ... and every result view of the site's URLconf is in the table.
    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            else:
                yield pattern

    detail = {
        p.name
        for p in walk(resolver.url_patterns)
        if getattr(getattr(p.callback, "cls", None), "kind", None)
        and getattr(p.callback, "actions", {}).get("get") == "retrieve"
    }
    assert detail == names


def test_the_site_matcher_agrees_with_the_site_urlconf():
    resolver = get_resolver()
    matcher = ResultMatcher(result_routes())
    for path in paths_for(API_PREFIX):
        clean = path.split("?")[0]
        assert matcher_answer(matcher, clean) == django_answer(resolver, clean), path


def test_result_paths_are_reversed_from_the_urlconf():
    assert result_path(ResultQuery("fib", 9, as_string=True)) == "/api/fib/9/?format=string"
    assert result_path(ResultQuery("pi", 5, digits=12)) == "/api/pi/5/?digits=12"
    assert result_path(ResultQuery("pi", 5)) == "/api/pi/5/"


@pytest.mark.parametrize("prefix", [API_PREFIX, "v2/"])
def test_pictures_are_routed_by_the_urlconf_and_never_matched_by_the_front(prefix):
    from compute.api.views import ConvergenceView
    from compute.http.routes import picture_routes

    urlconf = SimpleNamespace(urlpatterns=[*api_urlpatterns(prefix), *seed_urlpatterns(prefix)])
    resolver = URLResolver(RegexPattern(r"^/"), urlconf)
    matcher = ResultMatcher(result_routes(prefix))
    (route,) = picture_routes(prefix)
    path = f"/{prefix}pi/12/convergence/"
    match = resolver.resolve(path)
    assert match.url_name == route.name == "pi-convergence"
    assert match.func.view_class is ConvergenceView and match.kwargs == {"n": "12"}
    assert matcher.match(path) is None
