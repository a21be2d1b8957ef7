"""Why a computation was refused before it ran, and when the client may try again.

Plain exceptions (no HTTP): the API maps them to its JSON errors
(``compute.api.exceptions``): ``BudgetSpent`` and ``ClientBusy`` are the
client's own doing, a 429; ``ServiceBusy`` is the process's capacity, a
503. Each carries ``retry_after`` in seconds and ``reason``, the metric
label of ``mathsite_compute_refusals``.
"""

from __future__ import annotations


class Refused(Exception):
    """A computation was refused before it started; nothing was computed or stored."""

    reason = "refused"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BudgetSpent(Refused):
    """The client's digits for this window (``COMPUTE_DIGITS_PER_HOUR``) are spent."""

    reason = "budget"

    def __init__(self, *, limit: int, spent: int, cost: int, retry_after: float) -> None:
        super().__init__(
            f"This client's compute budget of {limit} digits per hour is spent "
            f"({spent} charged; this result costs {cost}). Cached results are still "
            "served; new ones are computed again when the window ends.",
            retry_after=retry_after,
        )
        self.limit, self.spent, self.cost = limit, spent, cost


class ClientBusy(Refused):
    """The client already runs its share of computations in this process."""

    reason = "client_busy"

    def __init__(self, *, limit: int, retry_after: float) -> None:
        super().__init__(
            f"This client already has {limit} computation(s) running here "
            "(COMPUTE_CONCURRENCY_PER_CLIENT); retry when one has finished.",
            retry_after=retry_after,
        )


class ServiceBusy(Refused):
    """Every computation slot of this process is taken and its queue is full or too slow."""

    reason = "busy"

    def __init__(self, *, retry_after: float) -> None:
        super().__init__(
            "Every computation slot is busy (COMPUTE_CONCURRENCY); cached results are "
            "still served. Retry shortly.",
            retry_after=retry_after,
        )
