"""``manage.py warm_cache KIND START END``: compute (or refill) a range of results ahead of clients.

Every n of the inclusive range goes through ``services.result_get``, the
same path as a request: a result already cached is a hit, one in the log
is copied back into Redis, anything else is computed, logged and cached.
A progress bar (tqdm, on stderr) shows how far it got.

Before starting, the command estimates how many decimal digits the range
holds (fib(n) has about n * log10(phi) = 0.209 n digits; a pi double about
17; a pi with ``--digits D`` exactly D) and refuses above ``--max-digits``
unless ``--force``: every digit is kept in the result log, so warming
fib(0..1,000,000) would store about 10**11 of them.

    python manage.py warm_cache fib 0 10000
    python manage.py warm_cache pi 1 5000 --digits 50
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from compute import services
from compute.cache import result_cache
from compute.conf import app_settings
from compute.domain.query import FIB, KINDS, PI, InvalidQuery, ResultQuery, parse_query

# log10 of the golden ratio: fib(n) has about n times this many digits.
FIB_DIGITS_PER_N = math.log10((1 + math.sqrt(5)) / 2)
# Digits of a pi double as the API writes it (repr of a float).
PI_DOUBLE_DIGITS = 17
# Refuse, unless forced, ranges estimated above this many stored digits
# (about 100 MB of result log; fib(0..30,000) is just under it).
DEFAULT_MAX_DIGITS = 100_000_000


def estimated_digits(kind: str, start: int, end: int, step: int, digits: int | None) -> int:
    """Return an estimate of the decimal digits stored by warming ``range(start, end + 1, step)``.

    Exact in the count of results; fib sizes follow n * log10(phi) summed
    over the arithmetic progression, so even a range of 10**18 values is
    estimated in constant time.
    """
    count = (end - start) // step + 1
    if kind == FIB:
        last = start + (count - 1) * step
        return math.ceil(FIB_DIGITS_PER_N * (start + last) * count / 2) + count
    return count * (digits if digits is not None else PI_DOUBLE_DIGITS)


class _Raw:
    """A file for tqdm over a command's stderr: written as is (no newline appended)."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


class Command(BaseCommand):
    help = "Compute or refill the results of KIND for n in [START, END] (inclusive)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("start", help="first n (inclusive)")
        parser.add_argument("end", help="last n (inclusive)")
        parser.add_argument("--step", type=int, default=1, help="n increment (default 1)")
        parser.add_argument("--digits", default=None, help="pi only: significant digits")
        parser.add_argument(
            "--max-digits",
            type=int,
            default=DEFAULT_MAX_DIGITS,
            help=f"refuse ranges estimated above this many digits (default {DEFAULT_MAX_DIGITS:,})",
        )
        parser.add_argument("--force", action="store_true", help="warm even a huge range")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        kind, digits_text = options["kind"], options["digits"]
        step = options["step"]
        if step < 1:
            raise CommandError("--step must be at least 1.")
        first = self._query(kind, options["start"], digits_text)
        last = self._query(kind, options["end"], digits_text)
        if last.n < first.n:
            raise CommandError(f"END ({last.n}) is below START ({first.n}).")
        estimate = estimated_digits(kind, first.n, last.n, step, first.digits)
        count = (last.n - first.n) // step + 1
        if estimate > options["max_digits"] and not options["force"]:
            raise CommandError(
                f"{count:,} results of about {estimate:,} digits in all exceed --max-digits "
                f"({options['max_digits']:,}); every digit is stored in the result log. "
                "Narrow the range, raise --max-digits, or pass --force."
            )
        computed = cached = 0
        started = time.perf_counter()
        show = not options["no_progress"] and options["verbosity"] > 0
        with tqdm(
            total=count,
            unit="result",
            desc=f"warming {kind}",
            disable=not show,
            file=_Raw(self.stderr),
        ) as bar:
            for n in range(first.n, last.n + 1, step):
                query = ResultQuery(kind, n, digits=first.digits)
                outcome = services.result_get(query=query)
                if outcome.cached:
                    cached += 1
                else:
                    computed += 1
                bar.update(1)
        result_cache.flush_stats()  # this process exits before its next periodic flush
        elapsed = time.perf_counter() - started
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Warmed {count:,} {kind} results in {elapsed:.1f}s: "
                f"{computed:,} computed, {cached:,} already cached or logged."
            )

    def _query(self, kind: str, n_text: str, digits_text: str | None) -> ResultQuery:
        """Validate one end of the range with the API's own parser and limits."""
        if kind == FIB and digits_text is not None:
            raise CommandError("--digits applies to pi only.")
        try:
            return parse_query(
                kind, n_text, digits_text if kind == PI else None, limits=app_settings.limits
            )
        except InvalidQuery as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from exc
