"""A flood of junk-laden hits grows no worker (SPEC, Operations; ``compute.http.memo``).

What one request makes the service hold is bounded in bytes: the front's
memo (URLs, hosts, built replies, kept answers) holds at most
``memo.MAX_BYTES`` and never remembers a request whose path, query string
and headers pass ``memo.MAX_KEY_CHARS``. On the project's own server
command (granian, two workers, a Redis of the test's own), ``FLOOD``
cached hits each carry about 120 KB of junk, different every time: in the
query string (ignored parameters: the answer stays a 200 hit), in
``Accept-Encoding`` (part of a kept answer's key), in ``X-Forwarded-Host``
(which decides nothing while ``USE_X_FORWARDED_HOST`` is off) and in
headers no one reads. granian takes such requests with its defaults (its
HTTP/1 buffer is 408 KiB; a request line stays under the 64 KiB a URI may
have). Every worker's resident memory (``VmRSS``) grows by less than
``GROWTH_BOUND`` over the flood, and another client's kept answer (the
same GET, repeated) survives it in every worker: the junk took no room
from it. Remembered without the bound, the flood's query strings and
``Accept-Encoding`` values alone hold about 230 MB (measured with both of
the memo's bounds lifted: 104-118 MiB of growth per worker); with only the
key bound lifted, the junk empties the memo again and again and the other
client's kept answers are gone.

Which worker answers is a race between them (one listening socket), so
every request opens a connection of its own and both workers get a share;
the kept answer is looked for through the test application's probe
(``KEPT_PROBE``, answered by ``tests.support.live_wsgi``), since on the wire a kept answer
and one built again are the same bytes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.servers import (
    KEPT_PROBE,
    LiveServer,
    Reply,
    http_get,
    serving_a_hit,
    wait_until,
)

pytestmark = pytest.mark.slow

WORKERS = 2
N = 90
PATH = f"/api/fib/{N}/"
FLOOD = 2_500
SENDERS = 4  # client threads; each request on a new connection
GROWTH_BOUND = 64 * 1024 * 1024  # bytes of VmRSS per worker over the flood
KEPT_ENCODING = "gzip, br"  # the other client's Accept-Encoding
# The junk of one request, in characters (about 120 KB in all).
QUERY_JUNK = 56_000  # the request line stays under 64 KiB
ENCODING_JUNK = 36_000
FORWARDED_JUNK = 12_000
OTHER_JUNK = 8_000  # each of two headers nobody reads


def junk(chars: int) -> str:
    """Return ``chars`` random hex characters (new ones each call: nothing repeats)."""
    return os.urandom(chars // 2 + 1).hex()[:chars]


def junk_request() -> tuple[str, dict[str, str]]:
    """Return the path and headers of one cached hit carrying about 120 KB of junk."""
    path = f"{PATH}?{urlencode({'junk': junk(QUERY_JUNK)})}"
    headers = {
        "Accept-Encoding": f"gzip, x-{junk(ENCODING_JUNK)};q=0.5",
        "X-Forwarded-Host": f"{junk(FORWARDED_JUNK)}.example",
        "X-Junk-One": junk(OTHER_JUNK),
        "X-Junk-Two": junk(OTHER_JUNK),
    }
    return path, headers


def rss_bytes(pid: int) -> int:
    """Return ``pid``'s resident set size (``VmRSS`` in /proc/<pid>/status), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def kept_probe(live: LiveServer) -> dict:
    """Ask whichever worker takes the connection about its front memo (see ``live_wsgi``)."""
    host = f"127.0.0.1:{live.port}"  # what http.client sends as Host
    query = urlencode({"path": PATH, "host": host, "accept_encoding": KEPT_ENCODING})
    reply = http_get(live.port, f"{KEPT_PROBE}?{query}", timeout=10)
    assert reply.status == 200, reply
    return reply.data


def kept_in_every_worker(live: LiveServer) -> dict[int, dict]:
    """Return the probe's answer of every worker; fail unless each was reached in time."""
    answers: dict[int, dict] = {}
    deadline = time.monotonic() + 20
    while answers.keys() != live.worker_pids() and time.monotonic() < deadline:
        answer = kept_probe(live)
        answers[answer["pid"]] = answer
    assert answers.keys() == live.worker_pids(), answers
    return answers


@pytest.fixture
def live(tmp_path) -> Iterator[LiveServer]:
    with serving_a_hit(tmp_path, PATH, workers=WORKERS) as server:  # hits from here on
        yield server


def keep_the_other_clients_answer(live: LiveServer) -> None:
    """Repeat the other client's GET until every worker keeps its answer."""

    def kept_everywhere() -> bool:
        for _ in range(4):  # a few tries on fresh connections reach both workers
            reply = live.get(PATH, headers={"Accept-Encoding": KEPT_ENCODING})
            assert reply.status == 200 and reply.data["result"] == fib_reference(N)
        return all(answer["kept"] for answer in kept_in_every_worker(live).values())

    assert wait_until(kept_everywhere, 30, interval=0)


def flood(live: LiveServer, count: int) -> list[Reply]:
    """Send ``count`` junk-laden hits from ``SENDERS`` threads; return every reply."""
    replies: list[Reply] = []
    guard = threading.Lock()
    left = iter(range(count))

    def send() -> None:
        while True:
            with guard:
                if next(left, None) is None:
                    return
            path, headers = junk_request()
            reply = http_get(live.port, path, headers=headers, timeout=30)
            with guard:
                replies.append(reply)

    threads = [threading.Thread(target=send) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    return replies


def test_a_flood_of_junk_laden_hits_grows_no_worker_and_keeps_others_answers(live, request):
    keep_the_other_clients_answer(live)
    flood(live, 50)  # first uses of the junk path (allocator arenas), before measuring
    workers = live.worker_pids()
    before = {pid: rss_bytes(pid) for pid in workers}

    started = time.monotonic()
    replies = flood(live, FLOOD)
    took = time.monotonic() - started
    after = {pid: rss_bytes(pid) for pid in workers}

    statuses = Counter(reply.status for reply in replies)
    assert statuses == {200: FLOOD}, statuses  # every one a hit, none refused for its size
    assert all(reply.data["result"] == fib_reference(N) for reply in replies)
    assert all(reply.headers["cache-status"].startswith("mathsite; hit") for reply in replies)
    assert live.worker_pids() == workers  # the same workers throughout: no restart hid growth
    records = live.accesses_of(replies)
    served = Counter(records[reply.test_id].pid for reply in replies)
    growth = {pid: after[pid] - before[pid] for pid in workers}
    for number, pid in enumerate(sorted(workers), 1):
        name = f"junk flood: worker {number}"
        record(request, f"{name}, requests of the flood served", served[pid])
        record(request, f"{name}, VmRSS before", round(before[pid] / 2**20, 1), "MiB")
        record(request, f"{name}, VmRSS growth", round(growth[pid] / 2**20, 1), "MiB")
    record(request, "junk flood: requests of ~120 KB junk per second", round(FLOOD / took))
    assert all(served[pid] > FLOOD / 10 for pid in workers), served  # each took a good share
    assert all(grown < GROWTH_BOUND for grown in growth.values()), growth

    # The other client's kept answer is still there in every worker, and is what it gets.
    answers = kept_in_every_worker(live)
    assert all(answer["kept"] for answer in answers.values()), answers
    for number, pid in enumerate(sorted(workers), 1):
        memo = answers[pid]["memo_bytes"]
        record(request, f"junk flood: worker {number}, front memo after", memo, "bytes")
    again = live.get(PATH, headers={"Accept-Encoding": KEPT_ENCODING})
    assert again.status == 200 and again.data["result"] == fib_reference(N)
    assert again.headers["cache-status"] == "mathsite; hit; detail=in-process"
