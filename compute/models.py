"""The result log: one row per computed result, browsed by staff in the admin.

Rows are written only by ``compute.services``. The identity of a result is
(kind, n, precision, modulus) with precision 0 for a double or an integer
and modulus 0 for anything but a fib residue (M >= 1), never NULL, because
SQL unique constraints treat NULLs as distinct and would let duplicates in
on every database.

Beside Django's add/change/delete/view, the model names two permissions
for the admin's actions: evicting results from the cache and recomputing
them change what every client is served (and recomputing costs CPU), so
they are granted on their own, not implied by "view".

``ResultCount`` holds the number of rows per kind and precision class,
kept by database triggers (migration 0004) on every insert and delete, so
the statistics read two or four rows instead of counting a million.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router, transaction
from django.db.models.constants import OnConflict

from compute.conf import app_settings
from compute.domain.kinds import registry


class ResultLogManager(models.Manager["ComputedResult"]):
    """The default manager, with the one lookup every cache miss makes."""

    def __init__(self) -> None:
        super().__init__()
        self._value_sql: dict[str, str] = {}  # the lookup's statement, per database alias
        self._insert_sql: dict[str, tuple[str, list[Any]]] = {}  # the insert's, and its fields

    def value_of(self, *, kind: str, n: int, precision: int, modulus: int) -> str | None:
        """Return the logged value of the result with this identity, or None if none is logged.

        A single row through the unique index, asked by every request that
        misses the cache. The statement is SQL written once per table rather
        than a QuerySet: building and compiling the same query through the
        ORM costs about 0.3 ms, a tenth of a cold request, for a statement
        that never changes (the quoting comes from the database's own
        backend, the names from the model).
        """
        alias = router.db_for_read(self.model)
        connection = connections[alias]
        sql = self._value_sql.get(alias)
        if sql is None:
            sql = self._value_sql[alias] = self._value_statement(connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, [kind, n, precision, modulus])
            row = cursor.fetchone()
        return None if row is None else row[0]

    def insert_new(self, row: ComputedResult) -> None:
        """Insert ``row`` unless its result is logged already (the existing row wins).

        The one write of every computation, as one statement in autocommit:
        ``bulk_create(ignore_conflicts=True)`` compiles the same INSERT each
        time and wraps it in a transaction of its own (on SQLite a ``BEGIN
        IMMEDIATE``, the INSERT, then a ``COMMIT``: three calls; on
        PostgreSQL two round trips), where a single statement commits by
        itself, atomically, with its triggers (``ResultCount``). Written
        once per table from the model's fields, quoted by the database's
        own backend (``INSERT OR IGNORE`` on SQLite, ``ON CONFLICT DO
        NOTHING`` on PostgreSQL); every value goes through its field's
        ``get_db_prep_save``, as the ORM's insert does. On PostgreSQL its
        commit does not wait for the WAL flush (``SET LOCAL
        synchronous_commit TO OFF`` in a transaction of its own) unless
        ``RESULT_LOG_SYNCHRONOUS_COMMIT``: a row can be computed again.
        """
        alias = router.db_for_write(self.model)
        connection = connections[alias]
        found = self._insert_sql.get(alias)
        if found is None:
            found = self._insert_sql[alias] = self._insert_statement(connection)
        sql, fields = found
        asynchronous = connection.vendor == "postgresql" and not (
            app_settings.RESULT_LOG_SYNCHRONOUS_COMMIT
        )
        params = [
            field.get_db_prep_save(field.value_from_object(row), connection) for field in fields
        ]
        if not asynchronous:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
            return
        # A row that can be computed again need not wait for its WAL flush (docs/
        # operations.md, "Durability"): a third of the insert's time on PostgreSQL.
        with transaction.atomic(using=alias, savepoint=False), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute(sql, params)

    def _insert_statement(self, connection: Any) -> tuple[str, list[Any]]:
        opts = self.model._meta
        quote = connection.ops.quote_name
        fields = [field for field in opts.concrete_fields if not field.primary_key]
        columns = ", ".join(quote(field.column) for field in fields)
        marks = ", ".join(["%s"] * len(fields))
        suffix = connection.ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)
        # Only identifiers, from the model and quoted by the backend; every value is a parameter.
        sql = (
            f"{connection.ops.insert_statement(on_conflict=OnConflict.IGNORE)} "
            f"{quote(opts.db_table)} ({columns}) VALUES ({marks}) {suffix}"
        ).rstrip()
        return sql, fields

    def _value_statement(self, connection: Any) -> str:
        opts = self.model._meta
        quote = connection.ops.quote_name
        column = {name: quote(opts.get_field(name).column) for name in (*_IDENTITY, "value")}
        where = " AND ".join(f"{column[name]} = %s" for name in _IDENTITY)
        # Only identifiers, from the model and quoted by the backend; every value is a parameter.
        return f"SELECT {column['value']} FROM {quote(opts.db_table)} WHERE {where}"  # noqa: S608


# The identity of a result: the fields of the unique constraint, in its order.
_IDENTITY = ("kind", "n", "precision", "modulus")


class ComputedResult(models.Model):
    """A computed result with its full value, size and cost."""

    # The registered kinds (``compute.domain.kinds``), read when Django asks:
    # a kind added to RESULT_KINDS needs no migration.
    kind = models.CharField(max_length=32, choices=registry.choices)
    n = models.PositiveBigIntegerField()
    precision = models.PositiveSmallIntegerField(
        default=0, help_text="Requested significant digits; 0 for a double (pi) or exact (fib)."
    )
    modulus = models.PositiveBigIntegerField(
        default=0, help_text="M of fib(n) mod M; 0 for every other result."
    )
    value = models.TextField(help_text="The full result in decimal.")
    preview = models.CharField(max_length=64)
    length = models.PositiveIntegerField(help_text="Number of decimal digits in the value.")
    compute_ms = models.FloatField(help_text="Time spent computing, in milliseconds.")
    computed_at = models.DateTimeField(db_index=True)

    objects = ResultLogManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "n", "precision", "modulus"], name="unique_result"
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "-computed_at", "-id"], name="result_kind_recent"),
        ]
        ordering = ["-computed_at", "-id"]
        permissions = [
            ("evict_computedresult", "Can evict results from the cache"),
            ("recompute_computedresult", "Can recompute results"),
        ]

    def __str__(self) -> str:
        if self.modulus:
            return f"{self.kind}({self.n}) mod {self.modulus}"
        suffix = f" ({self.precision} digits)" if self.precision else ""
        return f"{self.kind}({self.n}){suffix}"

    @property
    def digits(self) -> int | None:
        """Return the requested precision as the API shows it (None for a double)."""
        return self.precision or None

    @property
    def mod(self) -> int | None:
        """Return M of a fib residue as the API shows it (None for every other result)."""
        return self.modulus or None


class ResultCount(models.Model):
    """How many log rows there are of one kind, with or without requested digits.

    Written only by the database's own triggers on ``ComputedResult``
    (migration ``0004_resultcount``): every insert and delete, whatever
    issued it (the service, a bulk insert that skips duplicates, ``COPY``,
    the admin), moves the count in the same transaction, so it is exact
    and costs the statistics one indexed read.
    """

    kind = models.CharField(max_length=32)
    with_digits = models.BooleanField()
    results = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "with_digits"], name="unique_result_count"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}{' (digits)' if self.with_digits else ''}: {self.results}"
