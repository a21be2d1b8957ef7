"""Look after ``make run``'s embedded Redis: replace leftovers, restart it when it dies.

``make run`` (``launcher.serve``) starts this as a child process of its own::

    python -m launcher.redis_supervisor --dir var/redis

It stops a server that an earlier, killed run left in the folder (it is not
adopted), starts the server, and then watches it: when it exits without
being asked to (a crash, ``kill -9``, the OOM killer), it is started again
after a back-off (``first_delay``, doubling up to ``max_delay``; back to
``first_delay`` once a server has run ``stable_after`` seconds), and each
restart is logged. SIGTERM or SIGINT stops the server cleanly (SHUTDOWN:
with persistence it saves) and ends the supervisor.

Why a process and not a thread of ``make run``: the server is spawned with
a parent-death signal (``launcher.lifetime``), which the kernel ties to the
spawning *thread*; this process is single-threaded, and ``make run`` gives
it a parent-death signal too. So however ``make run`` ends, including
SIGKILL of its whole process group, the supervisor gets SIGTERM and stops
the server, and if the supervisor itself is killed the server gets SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from launcher import embedded_redis, lifetime
from launcher.embedded_redis import RedisServer

logger = logging.getLogger("launcher.redis_supervisor")


class Supervisor:
    """Keep one ``RedisServer`` running until ``stop()`` (or SIGTERM/SIGINT via ``run``)."""

    first_delay = 0.5  # seconds before the first restart
    max_delay = 30.0  # the longest wait between restarts
    stable_after = 30.0  # a server that ran this long resets the back-off
    poll_interval = 0.1  # seconds between checks of the server process
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.stopping = False
        self.restarts = 0

    def stop(self, *_args: object) -> None:
        """Ask the loop to stop the server and return (safe in a signal handler)."""
        self.stopping = True

    def _start(self) -> bool:
        """Start the server; return False (and log) if it would not start."""
        try:
            self.server.start()
        except RuntimeError as exc:
            logger.error("embedded Redis did not start: %s", exc)
            return False
        logger.info("embedded Redis running (pid %s) at %s", self.server.pid, self.server.url())
        return True

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early when asked to stop."""
        deadline = self.clock() + seconds
        while not self.stopping and self.clock() < deadline:
            self.sleep(min(self.poll_interval, max(deadline - self.clock(), 0)))

    def run(self) -> int:
        """Replace a leftover, start the server, restart it when it dies; return 0 when stopped."""
        leftover = self.server.stop_leftover()
        if leftover is not None:
            logger.warning(
                "stopped a Redis server (pid %s) that an earlier run left in %s",
                leftover,
                self.server.folder,
            )
        delay = self.first_delay
        while not self.stopping:
            started = self.clock()
            if self._start():
                while not self.stopping and self.server.running():
                    self.sleep(self.poll_interval)
                if self.stopping:
                    break
                code = self.server.process.returncode if self.server.process else None
                if self.clock() - started >= self.stable_after:
                    delay = self.first_delay
                logger.error(
                    "embedded Redis (pid %s) exited with %s; restarting in %.1f s",
                    self.server.pid,
                    code,
                    delay,
                )
            else:
                logger.error("retrying the embedded Redis in %.1f s", delay)
            self._wait(delay)
            delay = min(delay * 2, self.max_delay)
            self.restarts += 1
        self.server.stop()
        logger.info("embedded Redis stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: supervise the embedded server kept in ``--dir``."""
    parser = argparse.ArgumentParser(prog="python -m launcher.redis_supervisor")
    parser.add_argument("--dir", type=Path, default=None, help="the server's folder")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Spawned from this (only) thread: the server gets SIGTERM if we die.
    server = embedded_redis.embedded(args.dir, preexec=lifetime.die_with_parent())
    supervisor = Supervisor(server)

    def handle(signum: int, _frame: FrameType | None) -> None:
        supervisor.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
