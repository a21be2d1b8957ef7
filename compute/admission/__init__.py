"""Admission of computations: what a request must pass before mathsite computes for it.

The request throttle (``compute.api.throttling``) counts requests; this
package bounds the work itself (SPEC "Operations": no single client can
exhaust the service):

- ``callers``: who asks (a ``Client`` by identity, or a named ``System`` caller);
- ``gate.ComputeGate``: the client's digit budget (``COMPUTE_DIGITS_PER_HOUR``,
  charged in Redis before the work starts), then a computation slot;
- ``slots.ComputeSlots``: caps on the computations a process runs at once,
  in all and per client, with a short bounded queue, so cached hits always
  find a free thread;
- ``refusals``: why a computation was refused, and when to retry.

It sits between the cache (the budget's ledger) and the services (which
enter the gate just before computing).
"""

from __future__ import annotations

from compute.admission.callers import Caller, Client, System
from compute.admission.gate import BUDGET_WINDOW_SECONDS, ComputeGate, compute_gate, process_slots
from compute.admission.refusals import BudgetSpent, ClientBusy, Refused, ServiceBusy
from compute.admission.slots import ComputeSlots

__all__ = [
    "BUDGET_WINDOW_SECONDS",
    "BudgetSpent",
    "Caller",
    "Client",
    "ClientBusy",
    "ComputeGate",
    "ComputeSlots",
    "Refused",
    "ServiceBusy",
    "System",
    "compute_gate",
    "process_slots",
]
