"""The gate a computation passes just before it runs: the caller's digit budget, then a slot.

``compute_gate.admit(caller, kind=..., cost=...)`` is entered by the service
once it knows that it must compute (no cache tier and no log row has the
value, and it holds the stampede lock), so cached hits, log reads and
requests that got another request's result are never charged. For a
``Client``, in order:

1. the budget: ``cost`` (the result's stored digits, ``Kind.stored_digits``,
   or a picture's charge) is charged to the client's hourly window in Redis
   (``BudgetLedger``); over ``COMPUTE_DIGITS_PER_HOUR``: ``BudgetSpent``,
   nothing charged;
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
from typing import Any

from compute import metrics
from compute.admission.callers import Caller, System
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


class ComputeGate:
    """Admit computations: charge a client's budget, then hold a slot."""

    def __init__(self, *, cache: Any = result_cache, slots: ComputeSlots = process_slots) -> None:
        self.cache = cache
        self.slots = slots

    def charge_request(self, caller: Caller, *, cost: int) -> ChargeRequest | None:
        """Return the budget charge ``admit`` would make for ``caller``, unmade; None if none.

        For the stampede lock (``ResultCache.compute_lock(charge=...)``),
        which makes it in the round trip that takes the lock; its outcome
        is then handed to ``admit`` as ``charged``.
        """
        limit = app_settings.COMPUTE_DIGITS_PER_HOUR
        if isinstance(caller, System) or limit is None:
            return None
        return self.cache.budget.request(
            caller.identity, cost, limit=limit, window_seconds=BUDGET_WINDOW_SECONDS
        )

    @contextlib.contextmanager
    def admit(
        self, caller: Caller, *, kind: str, cost: int, charged: Charge | None = None
    ) -> Iterator[None]:
        """Run the block as an admitted computation (of ``kind``, costing ``cost`` digits)
        for ``caller``; raise a Refused otherwise.

        ``charged``: the budget charge already made for this computation (by
        the lock's attempt, from ``charge_request``), used instead of making
        one; refunded like one if the block fails.
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
        charge = charged
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
