"""Fixtures of the admin tests: five computed results, a view-only staff member, Redis down.

"Redis down" is a real unreachable server: the admin's ``result_cache``
collaborator is swapped for a ``ResultCache`` whose cache alias points at a
TCP port that is bound but not listening, so every connection attempt is
refused by the kernel, exactly as when Redis has died; the rest of the
process keeps using the test Redis.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission

from compute import services
from compute.admin import options as result_admin
from compute.cache import ResultCache
from compute.models import ComputedResult
from tests.admin.pages import QUERIES
from tests.support.callers import SETUP


@pytest.fixture
def results() -> dict[str, ComputedResult]:
    """Compute five results through the service (log rows + Redis entries)."""
    for query in QUERIES.values():
        services.result_get(caller=SETUP, query=query)
    return {
        name: ComputedResult.objects.get(kind=q.kind, n=q.n, precision=q.precision)
        for name, q in QUERIES.items()
    }


@pytest.fixture
def view_only_staff(django_user_model):
    """A staff member who may view (not add, change or delete) results."""
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_computedresult"))
    return user


@pytest.fixture
def unreachable_redis(settings, monkeypatch) -> Iterator[ResultCache]:
    """Point the admin at a Redis address where nothing listens (connection refused)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))  # bound, never listening: the port stays closed and ours
    port = holder.getsockname()[1]
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"},
    }
    down = ResultCache(alias="unreachable")
    monkeypatch.setattr(result_admin.ComputedResultAdmin, "result_cache", down)
    try:
        yield down
    finally:
        holder.close()
