"""The gate a computation passes just before it runs: the caller's digit budget, then a slot.

``compute_gate.admit(caller, kind=..., cost=...)`` is entered by the service
once it knows that it must compute (no cache tier and no log row has the
value, and it holds the stampede lock), so cached hits, log reads and
requests that got another request's result are never charged. For a
``Client``, in order:

1. the budget: ``cost`` (the result's stored digits, ``Kind.stored_digits``,
   or a picture's charge) is charged to the client's hourly window in Redis
   (``BudgetLedger``); over ``COMPUTE_DIGITS_PER_HOUR``: ``BudgetSpent``,
   nothing charged. For a result, the service asks ``charges`` first and
   the stampede lock's attempt makes them (the client's rate count, then
   this charge) in the round trip that takes the lock; ``admit`` is handed
   what it made (``made``) and refuses or carries on from there;
2. a computation slot of this process (``ComputeSlots``); refused: the
   charge is refunded and ``ClientBusy`` or ``ServiceBusy`` is raised.

A ``System`` caller is charged nothing and waits for a slot instead of being
refused; its computations are counted per caller in the metrics.

The block then computes and records; a block that raises (the computation
failed, or the result log could not be written) is refunded, so a client is
charged only for results it got.

    >>> with compute_gate.admit(Client("203.0.113.7"), kind="fib", cost=21):   # doctest: +SKIP
    ...     text = compute(query)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from compute import metrics
from compute.admission.callers import Caller, Client, System
from compute.admission.refusals import BudgetSpent, Refused
from compute.admission.slots import ComputeSlots
from compute.cache import result_cache
from compute.cache.budget import Charge, ChargeRequest
from compute.conf import app_settings

# The budget's window: COMPUTE_DIGITS_PER_HOUR is per (fixed, wall-clock) hour.
BUDGET_WINDOW_SECONDS = 3600

process_slots = ComputeSlots(
    concurrency=lambda: app_settings.COMPUTE_CONCURRENCY,
    per_client=lambda: app_settings.COMPUTE_CONCURRENCY_PER_CLIENT,
    queue=lambda: app_settings.COMPUTE_QUEUE_LENGTH,
    wait=lambda: app_settings.COMPUTE_QUEUE_WAIT,
)


@dataclass(frozen=True, slots=True)
class Charges:
    """What one computation of a client is charged: its compute rate's count, its digits.

    Either may be None (the rate or the budget switched off, or a throttle
    that counts on its own). ``requests`` is the order the lock's attempt
    makes them in: the rate first, as the throttle ran before the budget.
    """

    rate: ChargeRequest | None
    budget: ChargeRequest | None

    @property
    def requests(self) -> tuple[ChargeRequest, ...]:
        """Return the charges to make, in order."""
        return tuple(request for request in (self.rate, self.budget) if request is not None)

    @property
    def never_fit(self) -> bool:
        """Return True if the rate refuses every computation (a rate of 0): no lock is worth
        taking, and the caller is refused unless a tier or the log holds the value."""
        return self.rate is not None and self.rate.limit < 1


class ComputeGate:
    """Admit computations: charge a client's budget, then hold a slot."""

    def __init__(self, *, cache: Any = result_cache, slots: ComputeSlots = process_slots) -> None:
        self.cache = cache
        self.slots = slots

    def charges(self, caller: Caller, *, cost: int) -> Charges | None:
        """Return what a computation of ``caller`` is to be charged, unmade; None for a system
        caller (charged nothing).

        For the stampede lock (``ResultCache.compute_lock(charges=...)``),
        which makes them in the round trip that takes the lock; what it made
        is then handed to ``admit`` (``made``). A rate of 0 is in them as a
        count that never fits (``Charges.never_fit``; ``refuse_at_once``).
        """
        if isinstance(caller, System):
            return None
        limit = app_settings.COMPUTE_DIGITS_PER_HOUR
        budget = None
        if limit is not None:
            budget = self.cache.budget.request(
                caller.identity, cost, limit=limit, window_seconds=BUDGET_WINDOW_SECONDS
            )
        return Charges(rate=caller.rate_charge(), budget=budget)

    def refuse_at_once(self, caller: Caller, charges: Charges) -> NoReturn:
        """Raise the caller's rate refusal of a count that never fits (``Charges.never_fit``):
        the entrance's own (DRF's ``Throttled`` for a view, the front's ``RateRefused``)."""
        assert isinstance(caller, Client) and charges.rate is not None
        caller.refuse_rate(charges.rate)

    def unused(self, charges: Charges | None, made: tuple[Charge, ...] | None) -> None:
        """Give back what was charged for a computation that is not made after all.

        The rate's count and the budget's digits alike (the lock's attempt
        made them, then the log held the value): a log read is no work.
        """
        if charges is None or not made:
            return
        for request, charge in zip(charges.requests, made, strict=False):
            self.cache.budget.refund(charge, request.cost)

    @contextlib.contextmanager
    def admit(
        self,
        caller: Caller,
        *,
        kind: str,
        cost: int,
        charges: Charges | None = None,
        made: tuple[Charge, ...] | None = None,
    ) -> Iterator[None]:
        """Run the block as an admitted computation (of ``kind``, costing ``cost`` digits)
        for ``caller``; raise a Refused otherwise.

        ``charges`` (from ``charges``) and ``made`` (what the lock's attempt
        made of them, or None if it could not): the rate's count and the
        budget's charge already made are used instead of being made here (a
        count that did not fit is refused as the throttle refuses); what the
        attempt could not make is made here, the rate first. Without
        ``charges`` the caller has run its throttle itself (``before_computing``).
        """
        if isinstance(caller, System):
            self.slots.acquire(caller.slot_owner, patient=True)
            try:
                yield
            finally:
                self.slots.release(caller.slot_owner)
                metrics.system_computation(caller.name, kind)
            return
        limit = app_settings.COMPUTE_DIGITS_PER_HOUR
        charge = None
        if charges is not None:
            by_request = dict(zip(charges.requests, made or (), strict=False))
            counted = by_request.get(charges.rate) if charges.rate is not None else None
            if counted is None:
                caller.before_computing()  # the rate, counted in a round trip of its own
            elif not counted.allowed:
                caller.refuse_rate(counted)
            if charges.budget is not None:
                charge = by_request.get(charges.budget)
        try:
            if limit is not None:
                if charge is None:
                    charge = self.cache.budget.charge(
                        caller.identity, cost, limit=limit, window_seconds=BUDGET_WINDOW_SECONDS
                    )
                if not charge.allowed:
                    raise BudgetSpent(
                        limit=limit, spent=charge.spent, cost=cost, retry_after=charge.retry_after
                    )
            try:
                self.slots.acquire(caller.slot_owner)
            except Refused:
                if charge is not None:
                    self.cache.budget.refund(charge, cost)
                raise
        except Refused as refused:
            metrics.compute_refused(kind, refused.reason)
            raise
        try:
            yield
        except BaseException:
            # The block did not complete (the computation failed, or its row
            # could not be written): the client is charged for nothing.
            if charge is not None:
                self.cache.budget.refund(charge, cost)
            raise
        finally:
            self.slots.release(caller.slot_owner)


compute_gate = ComputeGate()
