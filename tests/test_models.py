"""The result log's models (``compute/models.py``): the counts the database keeps.

``ResultCount`` is written by triggers only (migration 0004); whatever
writes the log, its rows must equal a plain COUNT of the log by kind and
precision class. Runs on SQLite and, with ``DATABASE_URL``, PostgreSQL
(statement triggers there).
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from compute import services
from compute.domain.query import ResultQuery
from compute.models import ComputedResult, ResultCount
from tests.support.callers import SETUP

pytestmark = pytest.mark.django_db


def kept() -> dict[tuple[str, bool], int]:
    return {
        (row.kind, row.with_digits): row.results for row in ResultCount.objects.all() if row.results
    }


def counted() -> dict[tuple[str, bool], int]:
    found: dict[tuple[str, bool], int] = {}
    for kind, precision in ComputedResult.objects.values_list("kind", "precision"):
        key = (kind, precision > 0)
        found[key] = found.get(key, 0) + 1
    return found


def row(kind: str, n: int, precision: int = 0) -> ComputedResult:
    return ComputedResult(
        kind=kind, n=n, precision=precision, value="1", preview="1", length=1,
        compute_ms=0.1, computed_at=timezone.now(),
    )  # fmt: skip


def test_counts_follow_every_way_the_log_is_written():
    assert kept() == {}
    services.result_get(caller=SETUP, query=ResultQuery("fib", 10))
    services.result_get(caller=SETUP, query=ResultQuery("pi", 10, digits=5))
    services.results_warm(caller=SETUP, queries=[ResultQuery("pi", n) for n in range(1, 30)])
    assert kept() == counted() == {("fib", False): 1, ("pi", True): 1, ("pi", False): 29}

    # A bulk insert that skips existing rows counts only the rows it added.
    ComputedResult.objects.bulk_create(
        [row("pi", 5), row("pi", 5000), row("fib", 10), row("fib", 11)], ignore_conflicts=True
    )
    assert kept() == counted() == {("fib", False): 2, ("pi", True): 1, ("pi", False): 30}

    services.result_delete(query=ResultQuery("pi", 10, digits=5))
    ComputedResult.objects.filter(kind="pi", n__lt=10).delete()
    ComputedResult.objects.get(kind="fib", n=11).delete()
    assert kept() == counted() == {("fib", False): 1, ("pi", False): 21}


def test_the_admin_statistics_read_the_kept_counts(admin_client):
    ComputedResult.objects.bulk_create([row("pi", n) for n in range(1, 101)])
    ComputedResult.objects.bulk_create([row("pi", n, 20) for n in range(1, 11)])
    response = admin_client.get("/admin/compute/computedresult/statistics/")
    counts = {item["kind"]: item for item in response.context["counts"]}
    assert (counts["pi"]["results"], counts["pi"]["with_digits"]) == (110, 10)
    assert counts["pi"]["largest_n"] == 100
    assert "fib" not in counts


def test_value_of_finds_exactly_the_row_of_an_identity():
    rows = [
        ComputedResult(
            kind=kind,
            n=n,
            precision=precision,
            modulus=modulus,
            value=value,
            preview=value,
            length=len(value),
            compute_ms=0.1,
            computed_at=timezone.now(),
        )
        for kind, n, precision, modulus, value in [
            ("pi", 10, 0, 0, "3.04936163598207"),
            ("pi", 10, 5, 0, "3.0494"),
            ("fib", 10, 0, 0, "55"),
            ("fib", 10, 0, 7, "6"),
            ("fib", 10**18, 0, 10**18, "183788299560546875"),
        ]
    ]
    ComputedResult.objects.bulk_create(rows)
    for made in rows:  # each identity finds its own value, whatever shares its n
        identity = {"kind": made.kind, "n": made.n, "precision": made.precision}
        assert ComputedResult.objects.value_of(**identity, modulus=made.modulus) == made.value
    assert ComputedResult.objects.value_of(kind="pi", n=11, precision=0, modulus=0) is None
    assert ComputedResult.objects.value_of(kind="fib", n=10, precision=0, modulus=8) is None
    assert ComputedResult.objects.value_of(kind="pi", n=10, precision=6, modulus=0) is None


def test_insert_new_writes_a_row_once_and_the_first_one_wins():
    first = row("fib", 4321)
    ComputedResult.objects.insert_new(first)
    second = row("fib", 4321)
    second.value = "2"
    ComputedResult.objects.insert_new(second)  # the same identity: ignored, no error
    (stored,) = ComputedResult.objects.filter(kind="fib", n=4321)
    assert stored.value == "1" and stored.computed_at == first.computed_at
    assert stored.compute_ms == 0.1 and stored.length == 1 and stored.modulus == 0
    assert kept() == counted() == {("fib", False): 1}  # the triggers saw one insert


@pytest.mark.parametrize("synchronous", [False, True])
def test_on_postgresql_a_log_row_commits_without_waiting_for_its_flush_unless_told(
    settings, synchronous
):
    """The durability the defaults choose (docs/operations.md, "Durability")."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("SQLite's durability is its connection's PRAGMA synchronous=NORMAL")
    settings.RESULT_LOG_SYNCHRONOUS_COMMIT = synchronous
    with CaptureQueriesContext(connection) as queries:
        ComputedResult.objects.insert_new(row("pi", 4322))
    asked = any("synchronous_commit" in query["sql"] for query in queries.captured_queries)
    assert asked is not synchronous
    assert ComputedResult.objects.filter(kind="pi", n=4322).count() == 1


def test_sqlite_commits_in_wal_mode_without_a_sync_per_commit(settings):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's durability is the insert's synchronous_commit")
    # The tests' database is in memory (no WAL there); a file database gets the same PRAGMAs.
    pragmas = settings.DATABASES["default"]["OPTIONS"]["init_command"]
    assert "journal_mode=WAL" in pragmas and "synchronous=NORMAL" in pragmas
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
