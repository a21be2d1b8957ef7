"""What the admin tests share: reference values, admin URLs, reading pages, running actions.

Reference values come from independent computations here (a Fibonacci loop,
an exact Basel partial sum with ``fractions`` and ``decimal``), never from
``compute.domain.maths``.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from django.core.cache import caches
from django.urls import reverse

from compute.domain.query import ResultQuery
from compute.models import ComputedResult

CHANGELIST = reverse("admin:compute_computedresult_changelist")
STATISTICS = reverse("admin:compute_computedresult_statistics")
INDEX = reverse("admin:index")


def fib_reference(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def pi_digits_reference(n: int, digits: int) -> str:
    """sqrt(6 * sum(1/i**2, i < n)) to ``digits`` significant digits, ties to even."""
    total = sum(Fraction(1, i * i) for i in range(1, n)) * 6
    with localcontext() as ctx:
        ctx.prec = digits + 30
        root = (Decimal(total.numerator) / Decimal(total.denominator)).sqrt()
        exponent = root.adjusted() - digits + 1
        return str(root.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN))


FIB_1000 = str(fib_reference(1000))
PI_100 = "3.131980747244363"  # SPEC: the exact value for n = 100, correctly rounded
PI_100_D50 = pi_digits_reference(100, 50)

QUERIES = {
    "fib0": ResultQuery("fib", 0),
    "fib10": ResultQuery("fib", 10),
    "fib1000": ResultQuery("fib", 1000),
    "pi100": ResultQuery("pi", 100),
    "pi100d50": ResultQuery("pi", 100, digits=50),
}


FIB_1000 = str(fib_reference(1000))
PI_100 = "3.131980747244363"  # SPEC: the exact value for n = 100, correctly rounded
PI_100_D50 = pi_digits_reference(100, 50)

QUERIES = {
    "fib0": ResultQuery("fib", 0),
    "fib10": ResultQuery("fib", 10),
    "fib1000": ResultQuery("fib", 1000),
    "pi100": ResultQuery("pi", 100),
    "pi100d50": ResultQuery("pi", 100, digits=50),
}


def redis_has(redis_client, query: ResultQuery) -> bool:
    """Ask the test Redis directly whether ``query``'s entry exists."""
    return bool(redis_client.exists(caches["default"].make_key(query.cache_key)))


def change_url(row: ComputedResult) -> str:
    return reverse("admin:compute_computedresult_change", args=[row.pk])


def page_rows(html: str) -> dict[int, str]:
    """Map each changelist row's primary key to that row's HTML."""
    rows = {}
    for chunk in html.split("<tr")[1:]:
        found = re.search(r'name="_selected_action" value="(\d+)"', chunk)
        if found:
            rows[int(found.group(1))] = chunk
    return rows


def cell(row_html: str, column: str) -> str:
    found = re.search(rf'class="field-{column}[^"]*">(.*?)</t[dh]>', row_html, re.S)
    assert found, f"no {column} cell"
    return found.group(1)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run_action(client, action: str, rows: list[ComputedResult], **extra):
    data = {"action": action, "index": "0", "_selected_action": [r.pk for r in rows], **extra}
    return client.post(CHANGELIST, data, follow=True)
