"""A minimal HTTP/1.1 client on raw sockets, for timing and counting bytes on the wire.

``http.client`` hides how many bytes crossed the socket and adds its own
parsing cost; the benchmark wants both the wall time from sending a request
to holding the full body, and the exact byte count. Gunicorn's sync workers
close every connection after one response, so each request here opens its
own connection (part of the measured time, as for any client of them).
Only 127.0.0.1 is ever contacted.

    >>> reply = fetch(8000, "/api/fib/10/")          # doctest: +SKIP
    >>> reply.status, reply.body, reply.wire_bytes   # doctest: +SKIP
    (200, b'{"cached":true,"result":55,"n":10}', 371)
"""

from __future__ import annotations

import socket
import time
import zlib
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class Reply:
    """One response: status, headers (lower-case names), raw body, bytes and seconds."""

    status: int
    headers: dict[str, str]
    body: bytes
    wire_bytes: int
    seconds: float
    header_bytes: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def cached(self) -> bool | None:
        """Return the body's ``cached`` flag, read from its first bytes (no JSON parse).

        A fib(1,000,000) body cannot go through ``json.loads`` (CPython's
        4,300-digit limit), and both services put ``cached`` first. A gzip
        body is inflated only as far as those bytes.
        """
        head = self.body[:64]
        if self.headers.get("content-encoding") == "gzip":
            head = zlib.decompressobj(31).decompress(self.body, 64)
        head = head.replace(b" ", b"")
        if head.startswith(b'{"cached":true'):
            return True
        if head.startswith(b'{"cached":false'):
            return False
        return None


def request_bytes(path: str, port: int, headers: dict[str, str] | None = None) -> bytes:
    """Return the bytes of a GET request for ``path``."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "User-Agent: mathsite-bench"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def read_reply(sock: socket.socket, started: float) -> Reply:
    """Read one full response from ``sock``; raise ConnectionError if it ends early."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = bytearray(rest)
    length = headers.get("content-length")
    if length is not None:
        expected = int(length)
        while len(body) < expected:
            chunk = sock.recv(max(65536, expected - len(body)))
            if not chunk:
                raise ConnectionError("connection closed inside the body")
            body += chunk
    else:  # no length: the body runs to the end of the connection
        while chunk := sock.recv(65536):
            body += chunk
    seconds = time.perf_counter() - started
    header_bytes = len(head) + 4
    return Reply(status, headers, bytes(body), header_bytes + len(body), seconds, header_bytes)


def response_size(data: bytes | bytearray) -> int | None:
    """Return the full size of the response starting ``data`` once its headers are in.

    None while the headers are incomplete or carry no Content-Length.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    for line in bytes(data[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return end + 4 + int(value)
    return None


def parse_complete(data: bytes, started: float) -> Reply | None:
    """Return the response held in ``data`` if it is complete (by Content-Length), else None."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    if length < 0 or len(rest) < length:
        return None
    status = int(lines[0].split(" ", 2)[1])
    seconds = time.perf_counter() - started
    return Reply(status, headers, rest[:length], len(head) + 4 + length, seconds, len(head) + 4)


def fetch(
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """GET ``path`` from 127.0.0.1:``port`` on a new connection; time it end to end."""
    data = request_bytes(path, port, headers)
    started = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(data)
        return read_reply(sock, started)
