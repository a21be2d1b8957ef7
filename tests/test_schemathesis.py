"""Property-based API tests generated from the OpenAPI schema (schemathesis), over real HTTP.

schemathesis' own runner (its command line, in a subprocess) fetches
``/api/schema/`` from a live granian serving mathsite (two workers, its own
SQLite copy of the migrated database, the run's Redis under a key prefix
of its own) and sends every operation generated requests, valid and
invalid. Each response must pass all of schemathesis' checks but one
(below): no 5xx; a status code, content type, headers and body the schema
documents; valid input accepted; invalid input rejected with a 4xx; an
unsupported method answered 405; and authentication enforced where it is
declared (requests carry a staff token so DELETEs succeed, and
schemathesis repeats them without it to see the 401).

Bounded: ``MAX_EXAMPLES`` cases per operation and phase, no stateful
phase, and a timeout on the subprocess. Every request is
recorded in a HAR file, which gives the exact count printed in pytest's
summary ("mathsite measured figures").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.support.figures import record
from tests.support.servers import BASE_DIR, LiveServer

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 8
PHASES = "examples,coverage,fuzzing"
# use_after_free expects a deleted resource to be gone (404), but a result is
# a pure function of n: after a DELETE the next GET computes it again (SPEC).
EXCLUDED_CHECKS = "use_after_free"
# The list operations' page_size follows DRF (documented in the schema):
# a value that is not a positive integer falls back to the default page
# size, so such "invalid" input is accepted by design, not rejected.
# The fib detail operations' n has two bounds: FIB_MAX_N without mod and
# FIB_MOD_MAX_N with it. OpenAPI cannot tie one parameter's bound to another's
# presence, so the schema states FIB_MAX_N (and the other in words), and
# n > FIB_MAX_N sent with a valid mod is rightly accepted. Every 400 of these
# operations is tested exactly in tests/api/test_views.py and test_fib_mod.py.
CONFIG = """
[[operations]]
include-operation-id = ["pi_log_list", "fib_log_list"]
checks.negative_data_rejection.enabled = false

[[operations]]
include-operation-id = [
    "fib_retrieve", "fib_destroy", "fib_retrieve_old_service", "fib_destroy_old_service",
]
checks.negative_data_rejection.enabled = false
"""
MAKE_TOKEN = (
    "from django.contrib.auth.models import User; "
    "from rest_framework.authtoken.models import Token; "
    "user = User.objects.create_superuser('schemathesis'); "
    "print(Token.objects.create(user=user).key)"
)


def schemathesis_run(
    url: str, token: str, folder: Path
) -> tuple[subprocess.CompletedProcess, Path]:
    """Run schemathesis against ``url``; return the finished process and its HAR file."""
    har = folder / "requests.har"
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(config),
        "run", f"{url}/api/schema/",
        "--phases", PHASES,
        "--exclude-checks", EXCLUDED_CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "20260601",
        "--workers", "4",
        "--request-timeout", "30",
        "--header", f"Authorization: Token {token}",
        "--suppress-health-check", "all",
        "--report", "har", "--report-har-path", str(har),
        "--no-color",
    ]  # fmt: skip
    env = {
        **os.environ,
        # The client parses fib results of 200,000 digits.
        "PYTHONINTMAXSTRDIGITS": "0",
        "HYPOTHESIS_STORAGE_DIRECTORY": str(folder / "hypothesis"),
    }
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=90)
    return done, har


@pytest.fixture
def server(tmp_path):
    """A live granian on the run's Redis (own prefix); yields (server, staff token)."""
    redis_url = os.environ["REDIS_URL"]
    live = LiveServer(tmp_path / "web", redis_url=redis_url, workers=2)
    try:
        live.start()
        made = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", MAKE_TOKEN],
            env=live.environment(),
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr[-2000:]
        yield live, made.stdout.split()[-1]
    finally:
        live.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{live.prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


def test_generated_requests_conform_to_the_schema(server, tmp_path, request):
    live, token = server
    started = time.monotonic()
    done, har = schemathesis_run(f"http://127.0.0.1:{live.port}", token, tmp_path)
    seconds = time.monotonic() - started

    summary = done.stdout[-5000:]
    assert done.returncode == 0, summary + done.stderr[-2000:]
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = Counter(entry["response"]["status"] for entry in entries)
    operations = {(e["request"]["method"], e["request"]["url"].split("?")[0]) for e in entries}
    record(request, "schemathesis requests sent", len(entries), "requests")
    record(request, "schemathesis responses by status", dict(sorted(statuses.items())), "")
    record(request, "schemathesis run time", round(seconds, 1), "s")
    assert not [status for status in statuses if status >= 500]
    assert len(entries) >= 100  # the run really generated traffic
    assert {method for method, _ in operations} >= {"GET", "DELETE"}
    assert "15 selected / 15 total" in done.stdout  # every operation of the schema
