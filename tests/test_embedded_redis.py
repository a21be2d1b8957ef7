"""The embedded Redis: start, stop, start again keeps the data (and a crash keeps what was written).

Mirrors ``launcher/embedded_redis.py``. Each test runs its own server in a
temporary folder (unix socket only, no port), never the run's shared one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from launcher import embedded_redis
from tests.support.servers import BASE_DIR, wait_until

pytestmark = pytest.mark.slow


def client_for(folder) -> redis.Redis:
    return redis.Redis(
        unix_socket_path=str(embedded_redis.socket_path(folder)),
        socket_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "redis"
    yield path
    if embedded_redis.is_running(path):  # a failed test must not leave a server behind
        client_for(path).shutdown(nosave=True)


def test_start_stop_start_keeps_the_data(folder):
    process = embedded_redis.start(folder)
    assert process is not None
    assert embedded_redis.is_running(folder)
    assert embedded_redis.url_for(folder) == f"unix://{folder / 'redis.sock'}?db=0"
    client = client_for(folder)
    client.set("mathsite:1:fib:10", b"r55")
    config = {k: v for k, v in client.config_get("*").items()}
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "allkeys-lru"
    assert int(config["maxmemory"]) == 256 * 2**20
    assert config["port"] == "0"  # no TCP port: the socket only

    embedded_redis.stop(folder, process)
    assert process.returncode is not None
    assert not embedded_redis.is_running(folder)

    again = embedded_redis.start(folder)
    try:
        assert client_for(folder).get("mathsite:1:fib:10") == b"r55"
    finally:
        embedded_redis.stop(folder, again)


def test_a_second_start_reuses_the_running_server(folder):
    process = embedded_redis.start(folder)
    try:
        assert embedded_redis.start(folder) is None
        assert process.poll() is None
    finally:
        embedded_redis.stop(folder, process)


def test_memory_cap_and_policy_come_from_the_environment(folder, monkeypatch):
    monkeypatch.setenv("EMBEDDED_REDIS_MAXMEMORY", "32mb")
    monkeypatch.setenv("EMBEDDED_REDIS_POLICY", "volatile-lru")
    process = embedded_redis.start(folder)
    try:
        config = client_for(folder).config_get("maxmemory*")
        assert int(config["maxmemory"]) == 32 * 2**20
        assert config["maxmemory-policy"] == "volatile-lru"
    finally:
        embedded_redis.stop(folder, process)


def test_a_crash_keeps_what_reached_the_append_only_file(folder):
    """SIGKILL (no shutdown, no final save): writes already in the AOF survive.

    With ``appendfsync everysec`` Redis writes each command to the file
    before it replies (an operating-system crash can lose the last second
    that was not yet fsynced; a process crash loses nothing written).
    """
    process = embedded_redis.start(folder)
    try:
        client = client_for(folder)
        client.set("mathsite:1:fib:11", b"r89")

        def in_the_file() -> bool:
            return any(
                b"mathsite:1:fib:11" in path.read_bytes()
                for path in folder.rglob("*.aof")
                if path.is_file()
            )

        assert wait_until(in_the_file, 3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
    again = embedded_redis.start(folder)
    try:
        assert client_for(folder).get("mathsite:1:fib:11") == b"r89"
    finally:
        embedded_redis.stop(folder, again)


def test_exec_runs_a_command_with_its_url_and_stops_the_server(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MATHSITE_DATA_DIR")}
    env["MATHSITE_DATA_DIR"] = str(data)
    script = (
        "import os, redis; url = os.environ['REDIS_URL']; "
        "print(url); print(redis.from_url(url).ping())"
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launcher.embedded_redis",
            "exec",
            "--",
            sys.executable,
            "-c",
            script,
        ],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.split() == [f"unix://{data / 'redis' / 'redis.sock'}?db=0", "True"]
    assert not embedded_redis.is_running(data / "redis")
    assert time.monotonic() - started < 30
