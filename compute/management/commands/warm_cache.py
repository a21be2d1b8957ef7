"""``manage.py warm_cache KIND START END``: compute (or refill) a range of results ahead of clients.

The range is warmed in batches of ``--batch`` results through
``services.results_warm``, with the outcome of a request for each (a
result already cached stays, one in the log is copied back into Redis,
anything else is computed, logged and cached) but a few round trips per
batch instead of several per result: one Redis pipeline to see what is
cached, one SQL query for what is logged, one bulk insert, one pipeline
of SETs. A progress bar (tqdm, on stderr) shows how far it got: plain
text, not Django's red error style, drawn with block characters on a
UTF-8 stream and with "=" otherwise.

Every computation goes through the service's entrance as the system caller
``warm_cache`` (``compute.admission.System``): charged to no client's budget,
waiting for a computation slot, large ones offloaded, counted in
``/metrics`` under its name. The kinds and their options (``--digits`` for
pi, ``--mod`` for fib) come from the kind registry, and each end of the
range is validated by the API's own parser and limits.

Before starting, the command estimates how many decimal digits the range
holds (each kind's ``stored_digits`` at both ends, averaged over the range:
exact for pi's constant sizes, within a fraction of a percent for fib(n),
whose size grows linearly with n) and refuses above ``--max-digits`` unless
``--force``: every digit is kept in the result log, so warming
fib(0..1,000,000) would store about 10**11 of them.

    python manage.py warm_cache fib 0 10000
    python manage.py warm_cache pi 1 5000 --digits 50
    python manage.py warm_cache fib 1 1000 --mod 1000000007
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from compute import services
from compute.admission import System
from compute.cache import result_cache
from compute.conf import app_settings
from compute.domain.kinds import registry
from compute.domain.kinds.base import SLOTS
from compute.domain.query import InvalidQuery, ResultQuery, parse_query

# Who the service is told asks (the metrics' caller label).
CALLER = System("warm_cache")
# Refuse, unless forced, ranges estimated above this many stored digits
# (about 100 MB of result log; fib(0..30,000) is just under it).
DEFAULT_MAX_DIGITS = 100_000_000


def estimated_digits(first: ResultQuery, last: ResultQuery, step: int) -> int:
    """Return an estimate of the decimal digits stored by warming ``first.n..last.n`` by ``step``.

    The kind's ``stored_digits`` at both ends, averaged over the count of
    results (the trapezoid rule): exact where a result's size does not
    depend on n (pi), within 1 % where it grows linearly (fib), and constant
    time even for a range of 10**18 values.
    """
    count = (last.n - first.n) // step + 1
    end = ResultQuery(last.kind, first.n + (count - 1) * step, digits=last.digits, mod=last.mod)
    costs = registry.get(first.kind)
    return (costs.stored_digits(first) + costs.stored_digits(end)) * count // 2


# Results per batch: large enough that round trips stop mattering, small
# enough that the progress bar moves and a batch's values fit in memory.
DEFAULT_BATCH = 500


def _unstyled(text: str) -> str:
    return text


class _Raw:
    """A file for tqdm over a command's stderr: written as is (no newline, no colour).

    Django styles a command's stderr as an error (bold red on a terminal);
    a progress bar is not one.
    """

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper
        self.encoding = getattr(wrapper, "encoding", None)

    @property
    def unicode(self) -> bool:
        """Return True if the stream takes UTF-8 (block characters draw the bar)."""
        return (self.encoding or "").lower().replace("-", "") == "utf8"

    def write(self, text: str) -> None:
        self.wrapper.write(text, style_func=_unstyled, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


class Command(BaseCommand):
    help = "Compute or refill the results of KIND for n in [START, END] (inclusive)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=registry.names())
        parser.add_argument("start", help="first n (inclusive)")
        parser.add_argument("end", help="last n (inclusive)")
        parser.add_argument("--step", type=int, default=1, help="n increment (default 1)")
        for slot in SLOTS:
            owners = [kind for kind in registry.kinds() if kind.option(slot) is not None]
            if owners:
                option = owners[0].option(slot)
                assert option is not None
                parser.add_argument(
                    f"--{slot}",
                    default=None,
                    help=f"{', '.join(kind.name for kind in owners)} only: {option.help}",
                )
        parser.add_argument(
            "--max-digits",
            type=int,
            default=DEFAULT_MAX_DIGITS,
            help=f"refuse ranges estimated above this many digits (default {DEFAULT_MAX_DIGITS:,})",
        )
        parser.add_argument("--force", action="store_true", help="warm even a huge range")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--batch",
            type=int,
            default=DEFAULT_BATCH,
            help=f"results per round trip (default {DEFAULT_BATCH})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = options["kind"]
        option_texts = {slot: options.get(slot) for slot in SLOTS}
        step = options["step"]
        if step < 1:
            raise CommandError("--step must be at least 1.")
        batch_size = options["batch"]
        if batch_size < 1:
            raise CommandError("--batch must be at least 1.")
        first = self._query(kind, options["start"], option_texts)
        last = self._query(kind, options["end"], option_texts)
        if last.n < first.n:
            raise CommandError(f"END ({last.n}) is below START ({first.n}).")
        estimate = estimated_digits(first, last, step)
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
        stream = _Raw(self.stderr)
        with tqdm(
            total=count,
            unit="result",
            desc=f"warming {kind}",
            disable=not show,
            file=stream,
            ascii=False if stream.unicode else " =",
        ) as bar:
            numbers = range(first.n, last.n + 1, step)
            for start in range(0, len(numbers), batch_size):
                batch = [
                    ResultQuery(kind, n, digits=first.digits, mod=first.mod)
                    for n in numbers[start : start + batch_size]
                ]
                outcome = services.results_warm(queries=batch, caller=CALLER)
                computed += outcome.computed
                cached += outcome.cached
                bar.update(len(batch))
        result_cache.flush_stats()  # this process exits before its next periodic flush
        elapsed = time.perf_counter() - started
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Warmed {count:,} {kind} results in {elapsed:.1f}s: "
                f"{computed:,} computed, {cached:,} already cached or logged."
            )

    def _query(self, kind: str, n_text: str, option_texts: dict[str, str | None]) -> ResultQuery:
        """Validate one end of the range with the API's own parser and limits."""
        try:
            return parse_query(
                kind,
                n_text,
                option_texts["digits"],
                mod_text=option_texts["mod"],
                limits=app_settings.limits,
            )
        except InvalidQuery as exc:
            message = exc.message
            if exc.field in SLOTS:
                message = message.replace(f"{exc.field} applies", f"--{exc.field} applies")
            raise CommandError(f"{exc.field}: {message}") from exc
