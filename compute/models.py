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

from django.db import models


class ComputedResult(models.Model):
    """A computed result with its full value, size and cost."""

    class Kind(models.TextChoices):
        PI = "pi", "pi"
        FIB = "fib", "fib"

    kind = models.CharField(max_length=8, choices=Kind.choices)
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

    kind = models.CharField(max_length=8)
    with_digits = models.BooleanField()
    results = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "with_digits"], name="unique_result_count"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}{' (digits)' if self.with_digits else ''}: {self.results}"
