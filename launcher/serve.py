"""``make run``: set up and serve mathsite locally the way it is meant to run.

Generates a ``SECRET_KEY`` on first run and keeps it in the data folder
(``var/secret_key``, never committed; the folder is made 0700, the key
0600), limits hosts to localhost, turns the
TLS-only settings off for this plain-HTTP local server, starts the
embedded Redis when no Redis is configured (``REDIS_URL``,
``REDIS_CLUSTER_NODES`` or ``REDIS_SENTINELS``), applies migrations, collects
static files and serves with granian on 127.0.0.1:$PORT (default 8000;
``launcher.server`` has the server's settings). Ctrl-C (or SIGTERM) stops
granian gracefully, then the embedded Redis, which persists its
data for the next run. ``python -m launcher.serve manage ARGS`` runs a
management command in the same environment (``make manage CMD=...``).

The embedded Redis runs under ``launcher.redis_supervisor`` (restarted with
back-off if it dies; a server left by a killed run is stopped and replaced,
not adopted). The supervisor and granian get a parent-death signal
(``launcher.lifetime``), so even a SIGKILL of this process, or of its whole
process group, leaves nothing running. ``run/serve.pid`` in the data folder
names the running ``make run``: a second one on the same data folder is
refused (it would take the first one's Redis away), and a pid file of a
killed run is simply replaced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from launcher import embedded_redis, lifetime, server
from mathsite import paths
from mathsite.paths import BASE_DIR

# How long make run waits for its embedded Redis to answer the first time.
REDIS_START_SECONDS = 15.0

LOCAL_DEFAULTS = {
    "ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
    "SECURE_PROXY_SSL_HEADER": "false",
}


def secret_key(folder: Path) -> str:
    """Return the secret key kept in data folder ``folder``; generate it (mode 600) on first use."""
    path = paths.secret_key_file(folder)
    if not path.exists():
        paths.private_folder(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, paths.PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


def local_environment() -> dict[str, str]:
    """Return the environment for the local server: the caller's, plus local defaults.

    The data folder is created, or put right, mode 0700 first: everything
    ``make run`` keeps there (the key, the database, Redis's files) is
    private to the service's user.
    """
    env = dict(os.environ)
    paths.private_folder(paths.data_dir())
    env.setdefault("SECRET_KEY", secret_key(paths.data_dir()))
    for name, value in LOCAL_DEFAULTS.items():
        env.setdefault(name, value)
    return env


REDIS_VARIABLES = ("REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS")


def redis_configured(env: dict[str, str]) -> bool:
    """Return True if ``env`` names an external Redis (one server, a cluster or Sentinel)."""
    return any(env.get(name) for name in REDIS_VARIABLES)


@contextlib.contextmanager
def claimed(data: Path) -> Iterator[None]:
    """Hold ``run/serve.pid`` in ``data`` for the block; exit if another make run holds it."""
    pid_file = paths.serve_pid_file(data)
    holder = lifetime.read_pid(pid_file)
    if (
        holder is not None
        and holder != os.getpid()
        and lifetime.alive(holder)
        and "launcher.serve" in lifetime.command_line(holder)
    ):
        raise SystemExit(
            f"mathsite: another make run (pid {holder}) is serving from {data}; "
            "stop it first, or set MATHSITE_DATA_DIR to another folder."
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        if lifetime.read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)


def start_supervised_redis(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``launcher.redis_supervisor`` on ``folder``; return it once its server answers.

    Its own session keeps the terminal's Ctrl-C away from it (granian stops
    first, then the supervisor is told to stop Redis); its parent-death
    signal stops it when this process dies in any way.
    """
    supervisor = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "launcher.redis_supervisor", "--dir", str(folder)],
        env=env,
        cwd=BASE_DIR,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lifetime.die_with_parent(),
    )
    probe = embedded_redis.embedded(folder)
    deadline = time.monotonic() + REDIS_START_SECONDS
    while not probe.answers():
        if supervisor.poll() is not None or time.monotonic() > deadline:
            stop_supervised_redis(supervisor)
            raise SystemExit(f"mathsite: the embedded Redis did not start (see {probe.log_file})")
        time.sleep(0.05)
    return supervisor


def stop_supervised_redis(supervisor: subprocess.Popen, wait: float = 30.0) -> None:
    """Tell the supervisor to stop Redis cleanly (it saves) and wait for it; bounded."""
    if supervisor.poll() is None:
        supervisor.terminate()
    try:
        supervisor.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        supervisor.kill()  # its server then gets its own parent-death SIGTERM
        supervisor.wait()


def main() -> int:
    """Set up and run the service until interrupted; return the server's exit code."""
    env = local_environment()
    python = sys.executable
    manage = [python, str(BASE_DIR / "manage.py")]
    with contextlib.ExitStack() as stack:
        stack.enter_context(claimed(paths.data_dir()))
        if not redis_configured(env):
            folder = embedded_redis.default_dir()
            supervisor = start_supervised_redis(folder, env)
            stack.callback(stop_supervised_redis, supervisor)
            env["REDIS_URL"] = embedded_redis.url_for(folder)
        subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [*manage, "collectstatic", "--noinput", "-v", "0"], env=env, check=True
        )
        port = env.get("PORT", "8000")
        print(f"mathsite: serving on http://127.0.0.1:{port}/ (Ctrl-C to stop)", flush=True)
        return server.run(env, host="127.0.0.1", port=port)


def manage(args: list[str]) -> int:
    """Run ``manage.py ARGS`` with ``make run``'s environment (data folder, key, Redis).

    For staff users, tokens and the cache commands on the embedded
    defaults: ``make manage CMD="createsuperuser"``. The embedded Redis is
    started for the command when the service is not running.
    """
    env = local_environment()
    folder = embedded_redis.default_dir()
    manage_py = [sys.executable, str(BASE_DIR / "manage.py")]

    def run(environment: dict[str, str]) -> int:
        # The same schema as the service's, even before its first start.
        migrate = [*manage_py, "migrate", "--noinput", "-v", "0"]
        subprocess.run(migrate, env=environment, check=True)  # noqa: S603
        return subprocess.call([*manage_py, *args], env=environment)  # noqa: S603

    if redis_configured(env):
        return run(env)
    with embedded_redis.running(folder) as url:
        return run({**env, "REDIS_URL": url})


if __name__ == "__main__":
    if sys.argv[1:2] == ["manage"]:
        sys.exit(manage(sys.argv[2:]))
    sys.exit(main())
