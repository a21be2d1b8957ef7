"""Who asks the service for a result: a client, or a named system caller.

Every entrance names its caller, and the service's admission
(``compute.admission.gate``) treats them differently:

- ``Client``: a request from outside, by its identity (``compute.clients``).
  Its computations pass the request-rate throttle (``throttle``, DRF's,
  counted once it is known that the value must be computed: by the
  stampede lock's attempt when it is a ``CountedRate``), are charged to
  its digit budget and take a computation slot within its share, or are
  refused (429/503);
- ``System``: an explicit system caller, such as ``warm_cache`` or staff in
  the admin (``System("admin:alice")``). It is charged to no client's budget
  or rate, waits for a computation slot instead of being refused, has its
  large computations offloaded like anyone's, and its work is counted per
  caller in ``/metrics`` (``mathsite_system_computations_total``).

There is no anonymous caller: the service's entrances take one as a
required argument, so no way in can skip admission by forgetting it.

    >>> Client("203.0.113.7").charged, System("warm_cache").charged
    (True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn, Protocol, runtime_checkable

from compute.cache.budget import Charge, ChargeRequest


@runtime_checkable
class CountedRate(Protocol):
    """A request-rate throttle that the stampede lock's attempt can count (DRF's, bound to
    the request: ``compute.api.throttling.RequestRate``); called, it counts on its own."""

    def __call__(self) -> None: ...

    def charge_request(self) -> ChargeRequest | None: ...

    def refuse(self, charge: Charge | ChargeRequest) -> NoReturn: ...


@dataclass(frozen=True, slots=True)
class Client:
    """A client of the service, by identity; throttled, charged and capped."""

    identity: str
    # DRF's request-rate throttle for computing requests: raises to refuse.
    throttle: Callable[[], None] | None = field(default=None, compare=False)

    charged = True

    @property
    def slot_owner(self) -> str:
        """Return the key its computation slots are counted under."""
        return self.identity

    def before_computing(self) -> None:
        """Run the request-rate throttle (may raise DRF's Throttled)."""
        if self.throttle is not None:
            self.throttle()

    def rate_charge(self) -> ChargeRequest | None:
        """Return the rate's count for the lock's attempt to make, or None (a plain throttle
        counts on its own, through ``before_computing``). A count that can never fit (a rate
        of 0) is returned too: ``Charges.never_fit`` tells the service to refuse at once."""
        if isinstance(self.throttle, CountedRate):
            return self.throttle.charge_request()
        return None

    def refuse_rate(self, charge: Charge | ChargeRequest) -> NoReturn:
        """Raise the throttle's refusal of a count that did not fit, or never can."""
        assert isinstance(self.throttle, CountedRate)
        self.throttle.refuse(charge)


@dataclass(frozen=True, slots=True)
class System:
    """A named system caller (a management command, the admin's staff user)."""

    name: str

    charged = False

    @property
    def slot_owner(self) -> str:
        """Return the key its computation slots are counted under."""
        return f"system:{self.name}"

    def before_computing(self) -> None:
        """Nothing: system callers have no request rate."""


Caller = Client | System
