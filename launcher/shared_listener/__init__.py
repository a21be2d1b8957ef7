"""granian's command line with one listening socket, held by granian's main process.

    python -m launcher.shared_listener mathsite.wsgi:application   # options: GRANIAN_* variables

granian 2.8 on Linux gives every worker a TCP socket of its own
(``SO_REUSEPORT``), which the worker binds only once it has imported the
application. Each of those sockets has its own backlog: a worker that dies
or is restarted takes the connections queued on it along (their clients
get a reset), and while every worker is down, or the only one restarts,
nothing listens and new connections are refused. granian has another way,
the one it takes on macOS, on Windows and for Unix sockets: the main
process binds the socket and the workers accept from it.
``SharedListenerServer`` takes that way on Linux too, and listens at once,
before any worker starts. Connections that arrive while workers boot, die
or restart wait in the one backlog, as under gunicorn's master, and a
dying worker leaves no queue of its own behind. The socket defers
accepting (``TCP_DEFER_ACCEPT``) until a connection's request has begun to
arrive: a worker stopping gracefully (a restart on purpose) closes the
connections it holds that have sent nothing yet, so it must hold none.

Otherwise this is granian's own server and command line (every
``GRANIAN_*`` option applies). The workers inherit the socket across
``fork``, call ``listen`` on it again (harmless) and accept from it, each
within its own backpressure: a worker at its limit stops accepting and the
others take the next connections. Which worker takes a connection is a
race between them (as under gunicorn), not a hash of the addresses as with
``SO_REUSEPORT``. ``main`` refuses to start a granian other than the
version this module was written for (``GRANIAN_VERSION``, the pin in
requirements.txt: a test keeps the two equal), or one that no longer
builds its server the way this class expects, rather than silently fall
back to a socket per worker.

Each request's environ is what the request brings and the keys WSGI
defines, not a copy of the server process's environment variables as
granian's own wrapper makes it (``request_environ``); a GET that the
application answers from a kept answer is sent before any environ is
built (``kept_hits``).

The entry point is this package's ``__main__``, so that the computation
processes a worker spawns do not import granian again
(``compute.admission.offload``).
"""

from __future__ import annotations

import socket

from granian import __version__, cli
from granian.net import SocketSpec
from granian.server import MPServer

from launcher.shared_listener import kept_hits, request_environ

# A worker that stops gracefully shuts down the connections it accepted
# whose request has not arrived yet, unanswered (granian closes idle
# connections on shutdown). With TCP_DEFER_ACCEPT the kernel hands a
# connection over only once its first bytes are in, so a worker never holds
# an empty one; a client that connects and stays silent is handed over
# after about this long.
DEFER_ACCEPT_SECONDS = 1

# The granian whose private hook (MPServer._init_shared_socket) and shared
# path this module was written against and tested with. The hook is not
# granian's API: any other release may change what it must set, and a
# wrong guess fails at runtime (a socket per worker again, or no socket),
# so another version is refused rather than trusted. Equal to the pin in
# requirements.txt (tests/test_shared_listener.py); bump both together
# after re-running that test file, tests/test_request_environ.py and
# tests/test_kept_hits.py.
GRANIAN_VERSION = "2.8.9"


class SharedListenerServer(MPServer):
    """granian's multi-process server; its main process binds and listens on the TCP socket."""

    def _init_shared_socket(self) -> None:
        if self.bind_uds:  # granian shares a Unix socket this way already
            super()._init_shared_socket()
            return
        holder = SocketSpec(self.bind_addr, self.bind_port, self.backlog).build()
        listener = socket.socket(fileno=holder.get_fd())
        listener.set_inheritable(True)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECONDS)
        listener.listen(self.backlog)  # queue connections before any worker is up
        # What granian's shared path sets: the workers get the holder, the
        # main process keeps the socket open until it shuts down.
        self._ssp, self._shd, self._sfd, self._sso = None, holder, listener.fileno(), listener


def main() -> None:
    """Run granian's command line with ``SharedListenerServer``; exit as granian does.

    Raise ``SystemExit`` (with a message naming both versions) if the
    installed granian is not ``GRANIAN_VERSION``, does not build its
    server through ``MPServer._init_shared_socket``, or keeps its WSGI
    wrapper's base environ elsewhere (``request_environ.check``).
    """
    if __version__ != GRANIAN_VERSION:
        raise SystemExit(
            f"mathsite: launcher.shared_listener was written for granian {GRANIAN_VERSION} "
            f"and relies on its internals; granian {__version__} is installed. "
            f"Install granian=={GRANIAN_VERSION} (requirements.txt)."
        )
    # Were the hook renamed, granian would silently bind a socket per worker again
    # (tests/test_shared_listener.py counts the listening sockets).
    if cli.Server is not MPServer or not callable(getattr(MPServer, "_init_shared_socket", None)):
        raise SystemExit(
            f"mathsite: granian {__version__} does not build its server as "
            "launcher.shared_listener expects (MPServer._init_shared_socket); "
            "use the granian version pinned in requirements.txt."
        )
    try:
        request_environ.install()
    except LookupError as error:
        raise SystemExit(
            f"mathsite: granian {__version__} does not build its WSGI wrapper as "
            f"launcher.shared_listener.request_environ expects ({error}); "
            "use the granian version pinned in requirements.txt."
        ) from error
    kept_hits.install()
    cli.Server = SharedListenerServer
    cli.entrypoint()
