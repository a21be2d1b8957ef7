"""The result log: one row per computed result, browsed by staff in the admin.

Rows are written only by ``compute.services``. The identity of a result is
(kind, n, precision, modulus) with precision 0 for a double or an integer
and modulus 0 for anything but a fib residue (M >= 1), never NULL, because
SQL unique constraints treat NULLs as distinct and would let duplicates in
on every database.
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
