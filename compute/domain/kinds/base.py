"""What a kind of result declares: the one place a kind's facts are written.

A kind (pi, fib, ...) is a ``Kind`` subclass and one instance of it, listed
in the ``RESULT_KINDS`` setting (``compute.domain.kinds.registry``). Every
module that needs to know the kinds asks the registry and reads what the
kind declares here: how a request for it is validated (its n bound and its
options), how it is computed, what it costs (CPU, for the computation slots
and offloading; stored digits, for the client's budget), how a stored value
is checked, and the words the schema, the admin, the statistics and the
front page use. Nothing else branches on a kind's name.

An option is a query parameter that selects another result of the same kind
(pi's ``digits``, fib's ``mod``). Options fill the query's option slots
(``ResultQuery.digits`` and ``ResultQuery.mod``, logged in the ``precision``
and ``modulus`` columns); a kind may use either slot with its own bounds.

    >>> from compute.domain.kinds import registry
    >>> registry.get("fib").stored_digits(ResultQuery("fib", 1_000_000))
    208988
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from compute.domain.query import FORMATS, InvalidQuery, Limits, ResultQuery, parse_int

# The option slots of a query, in the order their values enter keys and ETags.
SLOTS = ("digits", "mod")


@dataclass(frozen=True, slots=True)
class Option:
    """A query parameter of a kind that names another result of it (``?digits=``, ``?mod=``)."""

    slot: str  # which query slot it fills: one of SLOTS (also the parameter's name)
    minimum: int
    limit: str  # the setting that bounds it, e.g. "PI_MAX_DIGITS"
    label: str  # how the form and the admin name it: "digits", "mod"
    help: str  # one sentence for the schema and the form
    # The setting that bounds n instead of the kind's own when this option is
    # given (fib(n) mod M costs O(log n), so n may go far higher). Such an
    # option is read before n, so an error in it is reported first.
    n_limit: str | None = None
    placeholder: str = ""  # the form field's example value, and the schema's name for it
    example: int = 10  # the value of the schema's example (its ETag)
    # The schema's words. ``describe`` may name {low}, {high}, {limit}, {n_high},
    # {n_limit} and {etag} (the example's ETag), filled from the current limits.
    describe: str = ""
    body: str = ""  # the body's field of the same name
    deletes: str = ""  # how it names the result a DELETE removes


@dataclass(frozen=True, slots=True)
class Series:
    """One series of the statistics chart: results of a kind drawn together."""

    key: str
    label: str
    colour: str
    shape: str


class Kind:
    """A kind of result. Subclasses set the attributes and implement ``compute``,
    ``stored_digits``, ``check`` and ``largest_literal``; the rest has defaults."""

    name: str = ""  # the URL segment, the log's kind column, the metric label
    label: str = ""  # "fib(n)": how people read it
    title: str = ""  # "fib(n), exact": the schema's "Get ..." summary
    summary: str = ""  # one sentence: what the result is (schema, viewset docs)
    tag: str = ""  # the schema's description of the kind's group of operations
    n_minimum: int = 0
    n_limit: str = ""  # the setting bounding n, e.g. "FIB_MAX_N"
    options: tuple[Option, ...] = ()
    # An exact integer: sent as a JSON integer, or a string with ?format=string.
    integer: bool = True
    nature: str = "exact integers"  # "fib results are <nature>" in error messages
    plain_label: str = "exact"  # the admin's precision column without an option
    example_n: int = 10  # the schema's and the docs' example
    picture: str | None = None  # the URL name of its derived picture, if it has one
    # The JSON schema of ``result``: one entry per form the value can take.
    result_forms: tuple[Mapping[str, object], ...] = ()

    # --- computation and cost -------------------------------------------------------

    def compute(self, query: ResultQuery) -> str:
        """Return the decimal text of ``query``'s result (pure; may run in a child process)."""
        raise NotImplementedError

    def stored_digits(self, query: ResultQuery) -> int:
        """Return the digits ``query``'s result stores (at least 1): what the budget charges."""
        raise NotImplementedError

    def cpu_cost(self, query: ResultQuery) -> int:
        """Return the work of computing ``query``, in digit-equivalents (offloading decides on
        it against ``COMPUTE_OFFLOAD_DIGITS``). By default the digits it produces."""
        return self.stored_digits(query)

    def largest_literal(self, limits: Limits) -> int:
        """Return the length of the longest stored literal the limits allow (entry bounds)."""
        raise NotImplementedError

    def check(self, query: ResultQuery, literal: bytes) -> None:
        """Return None if ``literal`` can be ``query``'s stored literal; raise ValueError if not.

        Cheap checks of shape and size (it runs on every read from Redis),
        behind the entry's MAC: an authentic entry is still served only if
        it can be this result.
        """
        raise NotImplementedError

    # --- validation -------------------------------------------------------------------

    def option(self, slot: str) -> Option | None:
        """Return this kind's option filling ``slot``, or None."""
        for option in self.options:
            if option.slot == slot:
                return option
        return None

    def parse(
        self,
        n_text: str | None,
        option_texts: Mapping[str, str | None],
        format_text: str | None,
        *,
        limits: Limits,
        owners: Callable[[str], str],
        integer_kinds: Callable[[], str],
    ) -> ResultQuery:
        """Return the validated query; raise InvalidQuery naming the field and the limit.

        ``owners(slot)`` names the kinds that have an option in that slot and
        ``integer_kinds()`` those that take ``format``: called only to word an
        error, so a valid request pays for neither.
        """
        values: dict[str, int] = {}
        n_limit = self.n_limit
        given = [(slot, text) for slot, text in option_texts.items() if text is not None]
        for slot, _text in given:
            if self.option(slot) is None:
                raise InvalidQuery(
                    slot,
                    f"{slot} applies to {owners(slot) or 'no kind'} only; "
                    f"{self.name} results are {self.nature}.",
                )
        early = [(slot, text) for slot, text in given if self.option(slot).n_limit]
        late = [(slot, text) for slot, text in given if not self.option(slot).n_limit]
        for slot, text in early:
            option = self.option(slot)
            values[slot] = parse_int(
                slot, text, option.minimum, limits.of(option.limit), option.limit
            )
            n_limit = option.n_limit or n_limit
        n = parse_int("n", n_text, self.n_minimum, limits.of(n_limit), n_limit)
        as_string = False
        if self.integer:
            if format_text is not None:
                if format_text not in FORMATS:
                    raise InvalidQuery("format", "format must be 'string' or 'number'.")
                as_string = FORMATS[format_text]
        elif format_text is not None and FORMATS.get(format_text, True):
            raise InvalidQuery(
                "format", f"format applies to {integer_kinds()} only; {self.string_hint()}"
            )
        for slot, text in late:
            option = self.option(slot)
            values[slot] = parse_int(
                slot, text, option.minimum, limits.of(option.limit), option.limit
            )
        return ResultQuery(self.name, n, as_string=as_string, **values)

    def string_hint(self) -> str:
        """Return how to get this (non-integer) kind's result as a string, for the 400 message."""
        return f"{self.name} results are not integers."

    # --- words and labels -------------------------------------------------------------------

    def about(self, limits: Limits) -> str:
        """Return what a result of this kind is, for people (the front page), with its bounds."""
        high = limits.of(self.n_limit)
        return f"— {self.summary.rstrip('.')}, for {self.n_minimum} ≤ n ≤ {high:,}."

    def describe(self, query: ResultQuery) -> str:
        """Return how people name ``query``'s result: ``fib(10) mod 7``, ``pi(100) (5 digits)``."""
        return f"{self.name}({query.n})"

    def precision_label(self, *, digits: int | None, mod: int | None) -> str:
        """Return the admin's precision column for a log row's options."""
        if digits:
            return f"{digits} digits"
        if mod:
            return f"mod {mod:,}"
        return self.plain_label

    def series(self) -> tuple[Series, ...]:
        """Return the statistics chart's series of this kind (the first is the default)."""
        return (Series(self.name, self.name, "#000000", "circle"),)

    def series_of(self, *, precision: int, modulus: int) -> str:
        """Return the key of the series a log row is drawn in."""
        return self.name
