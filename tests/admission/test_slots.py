"""Computation slots of a process (``compute.admission.slots``), with real threads.

Threads hold slots until an Event says stop; a waiter's progress is seen
through the public counters (``running``, ``waiting``), never by sleeping.
"""

from __future__ import annotations

import threading
import time

import pytest

from compute.admission import ClientBusy, ComputeSlots, ServiceBusy
from tests.support.servers import wait_until


def slots(*, concurrency=2, per_client=1, queue=1, wait=10.0) -> ComputeSlots:
    return ComputeSlots(
        concurrency=lambda: concurrency,
        per_client=lambda: per_client,
        queue=lambda: queue,
        wait=lambda: wait,
    )


class Holder:
    """A thread that holds a slot for ``client`` until ``release()``; records what happened."""

    def __init__(self, pool: ComputeSlots, client: str) -> None:
        self.pool, self.client = pool, client
        self.entered, self.done, self.stop = threading.Event(), threading.Event(), threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            with self.pool.hold(self.client):
                self.entered.set()
                self.stop.wait(10)
        except (ClientBusy, ServiceBusy) as exc:
            self.error = exc
        finally:
            self.done.set()

    def release(self) -> None:
        self.stop.set()
        self.thread.join(10)


def test_a_client_over_its_share_is_refused_at_once_and_others_still_run():
    pool = slots()
    first = Holder(pool, "a")
    assert first.entered.wait(5)
    started = time.monotonic()
    with pytest.raises(ClientBusy) as refused, pool.hold("a"):
        pass
    assert time.monotonic() - started < 0.5  # no waiting for its own share
    assert refused.value.retry_after == 1.0
    with pool.hold("b"):  # another client gets the second slot
        assert pool.running == 2
    first.release()
    assert (pool.running, pool.waiting, pool.clients) == (0, 0, {})


def test_a_full_process_queues_one_and_refuses_the_next_at_once():
    pool = slots(concurrency=2, per_client=1, queue=1)
    a, b = Holder(pool, "a"), Holder(pool, "b")
    assert a.entered.wait(5) and b.entered.wait(5)
    queued = Holder(pool, "c")
    assert wait_until(lambda: pool.waiting == 1, 5)
    assert not queued.entered.is_set()
    with pytest.raises(ServiceBusy), pool.hold("d"):  # the queue is full
        pass
    a.release()  # a slot comes free: the waiter gets it
    assert queued.entered.wait(5)
    assert (pool.running, pool.waiting) == (2, 0)
    b.release()
    queued.release()
    assert queued.error is None
    assert (pool.running, pool.waiting, pool.clients) == (0, 0, {})


def test_a_waiter_gives_up_after_the_queue_wait_and_leaves_no_trace():
    pool = slots(concurrency=1, per_client=2, queue=1, wait=0.0)
    holder = Holder(pool, "a")
    assert holder.entered.wait(5)
    with pytest.raises(ServiceBusy), pool.hold("a"):
        pass
    assert (pool.running, pool.waiting, pool.clients) == (1, 0, {"a": 1})
    holder.release()
    assert (pool.running, pool.clients) == (0, {})


def test_waiting_counts_towards_the_clients_share():
    pool = slots(concurrency=1, per_client=2, queue=2)
    holder = Holder(pool, "a")
    assert holder.entered.wait(5)
    waiter = Holder(pool, "a")
    assert wait_until(lambda: pool.waiting == 1, 5)
    with pytest.raises(ClientBusy), pool.hold("a"):  # one running + one waiting = its share
        pass
    holder.release()
    assert waiter.entered.wait(5)
    waiter.release()
    assert pool.clients == {}
