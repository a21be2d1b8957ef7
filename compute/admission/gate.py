"""The gate a computation passes just before it runs: the client's digit budget, then a slot.

``ComputeGate(client_id).admit(query)`` is entered by the service once it
knows that it must compute (no cache tier and no log row has the value, and
it holds the stampede lock), so cached hits, log reads and requests that
got another request's result are never charged. In order:

1. the budget: ``estimated_digits(query)`` (``compute.domain.cost``) is
   charged to the client's hourly window in Redis (``BudgetLedger``); over
   ``COMPUTE_DIGITS_PER_HOUR``: ``BudgetSpent``, nothing charged;
2. a computation slot of this process (``ComputeSlots``); refused: the
   charge is refunded and ``ClientBusy`` or ``ServiceBusy`` is raised.

The block then computes and stores; nothing is charged back once it ran.

    >>> with ComputeGate("203.0.113.7").admit(query):   # doctest: +SKIP
    ...     text = compute(query)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from compute import metrics
from compute.admission.refusals import BudgetSpent, Refused
from compute.admission.slots import ComputeSlots
from compute.cache import result_cache
from compute.conf import app_settings
from compute.domain.cost import estimated_digits
from compute.domain.query import ResultQuery

# The budget's window: COMPUTE_DIGITS_PER_HOUR is per (fixed, wall-clock) hour.
BUDGET_WINDOW_SECONDS = 3600

process_slots = ComputeSlots(
    concurrency=lambda: app_settings.COMPUTE_CONCURRENCY,
    per_client=lambda: app_settings.COMPUTE_CONCURRENCY_PER_CLIENT,
    queue=lambda: app_settings.COMPUTE_QUEUE_LENGTH,
    wait=lambda: app_settings.COMPUTE_QUEUE_WAIT,
)


class ComputeGate:
    """Admit one client's computations: charge its budget, then hold a slot."""

    def __init__(
        self, client_id: str, *, cache: Any = result_cache, slots: ComputeSlots = process_slots
    ) -> None:
        self.client_id = client_id
        self.cache = cache
        self.slots = slots

    @contextlib.contextmanager
    def admit(self, query: ResultQuery) -> Iterator[None]:
        """Run the block as an admitted computation of ``query``; raise a Refused otherwise."""
        cost = estimated_digits(query)
        limit = app_settings.COMPUTE_DIGITS_PER_HOUR
        charge = None
        try:
            if limit is not None:
                charge = self.cache.budget.charge(
                    self.client_id, cost, limit=limit, window_seconds=BUDGET_WINDOW_SECONDS
                )
                if not charge.allowed:
                    raise BudgetSpent(
                        limit=limit, spent=charge.spent, cost=cost, retry_after=charge.retry_after
                    )
            try:
                self.slots.acquire(self.client_id)
            except Refused:
                if charge is not None:
                    self.cache.budget.refund(charge, cost)
                raise
        except Refused as refused:
            metrics.compute_refused(query.kind, refused.reason)
            raise
        try:
            yield
        finally:
            self.slots.release(self.client_id)
