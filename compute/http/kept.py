"""The front's kept answers: whole replies to the hits clients repeat, by what decides them.

A hit through ``ResultFront.answer`` matches the URL, validates the query,
checks the host and the scheme, parses ``Accept-Encoding`` and finds the
built reply: each step is cheap, but together they are most of what a hit
costs a worker, and under load every microsecond the GIL is held is paid
again in hand-offs between the worker's threads (measured on granian: the
front at 48-53k req/s, the same replies sent without any of it at 76-80k).
Clients ask for the same URLs with the same headers again and again, so the
front keeps each answer by everything in the request that decides it:
``request_key``. A kept answer is sent again only while

- no setting changed: it was kept under the current settings generation
  (``app_settings.generation``, bumped by every change);
- the site headers trusted for its status and scheme are the very tuple it
  was sent with (``SiteHeaders`` replaces the tuple when they change);
- this process's tier still holds the very payload it was built from and
  may serve it without asking Redis (``ResultCache.serves``: no
  eviction sync due, the tier in step, the entry unchanged; the hit is
  counted as a lookup's), so an evicted result is never answered from here
  and a sync that is due goes through the full path, which makes it.

A kept answer is thus always the in-process tier's: its ``Cache-Status``
says ``detail=in-process`` even when the request that kept it found its
payload in Redis (``ResultFront.keep``).

Only GETs without ``If-None-Match`` are kept, with bodies of at most
``memo.MAX_BODY`` bytes (a large body costs its sending, not this; and a
kept payload must not outlive the in-process tier's budget by much), in
the front's one memo (``compute.http.memo``: bounded in bytes, and a
request whose path, query string and headers together are too long is
never kept). ``X-Forwarded-Host`` is part of the key only when Django
reads it (``USE_X_FORWARDED_HOST``): otherwise it decides nothing, and a
client varying it must not make answers to keep.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compute import metrics
from compute.conf import app_settings
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from compute.http import hit
from compute.http.routes import Route

# ("kept", PATH_INFO, QUERY_STRING, Host, X-Forwarded-Host, Accept-Encoding, secure)
RequestKey = tuple[str, str, str, str, str | None, str | None, bool]


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Kept:
    """One kept answer, what it was built from, and what sending it again takes.

    ``status_line``, ``headers`` (the reply's, then the site's), ``body``
    (the list a WSGI server is handed) and ``tally_key`` (its entry in the
    front's request tally) are built once, when the answer is kept: sending
    it again builds nothing (every object made under the GIL is paid again
    in hand-offs between a worker's threads).
    """

    route: Route
    query: ResultQuery
    payload: Payload
    reply: hit.Reply
    extra: hit.Headers
    status_line: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    status: int = 200  # the status and body again, as a server sending it itself takes them
    content: bytes = b""
    tally_key: tuple[str, str, str, str | None] = ("", "", "", None)
    cache_key: str = ""
    cache: Any = None  # the ResultCache it was kept from (a kept answer lives one generation)
    # What ``ResultCache.serves`` returned last for it (-1: not yet): the
    # only field that changes, written by whichever thread sent it last.
    checked: list[int] = field(default_factory=lambda: [-1])
    # Counts one send in the front's request tally (``metrics.watch_kept``).
    count_send: Callable[[], int] = field(default=lambda: 0, compare=False)

    @classmethod
    def of(
        cls,
        route: Route,
        query: ResultQuery,
        payload: Payload,
        reply: hit.Reply,
        extra: hit.Headers,
        cache: Any,
    ) -> Kept:
        """Return the kept answer of ``reply`` (a 200 to a GET) with what resending it takes.

        ``cache`` is the process's ``ResultCache`` itself (not the proxy to
        it): the cache is built again only when a setting changes, and then
        no kept answer of the generation before is sent again.
        """
        tally_key = (route.name, "GET", str(reply.status), route.kind)
        sends = itertools.count()
        kept = cls(
            route, query, payload, reply, extra,
            status_line=reply.status_line,
            headers=[*reply.headers, *extra],
            body=[reply.body],
            status=reply.status,
            content=reply.body,
            tally_key=tally_key,
            cache_key=query.cache_key,
            cache=cache.instance,
            count_send=sends.__next__,  # C-level: no Python frame per hit
        )  # fmt: skip
        metrics.watch_kept(kept, tally_key, sends)
        return kept

    def still_sendable(self) -> bool:
        """Count a hit and return True if the in-process tier still holds this payload.

        ``ResultCache.serves``: the entry is looked at only when something
        left the tier since this answer was last sent. Two threads sending
        it at once each store a count they checked: either is right.
        """
        checked = self.cache.serves(self.cache_key, self.payload, self.checked[0])
        self.checked[0] = checked
        return checked >= 0

    @property
    def nbytes(self) -> int:
        """Return an estimate of the memory this answer holds (the reply, the payload)."""
        return self.reply.nbytes + self.payload.nbytes


def request_key(environ: dict, secure: bool) -> RequestKey | None:
    """Return the key of a GET's answer, or None if the request cannot have a kept one."""
    host = environ.get("HTTP_HOST")
    if host is None or "HTTP_IF_NONE_MATCH" in environ:
        return None  # no Host: Django's fallback decides; a conditional GET may be a 304
    forwarded_host = None
    if app_settings.USE_X_FORWARDED_HOST:
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST")
    return (
        "kept",
        environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
        host,
        forwarded_host,
        environ.get("HTTP_ACCEPT_ENCODING"),
        secure,
    )
