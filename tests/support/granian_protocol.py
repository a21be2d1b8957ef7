"""A stand-in for the protocol object granian's Rust side hands its WSGI wrapper.

Python cannot make the real one; the wrapper calls one method of it for a
reply in one piece, which this records, so tests can run granian's own
wrapper (and the project's additions to it) in process.
"""

from __future__ import annotations


class Protocol:
    """Records each reply the wrapper sends through ``response_bytes``."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list, bytes]] = []

    def response_bytes(self, status: int, headers: list, body: bytes) -> None:
        self.sent.append((status, list(headers), body))
