"""A kind added by its declaration alone: ``tests/kinds`` in a pytest process of its own.

The URLconf, the routes and the WSGI front's matcher are built from the
kind registry when a process starts, so the test-only kind
(``tests.kinds.square``) is registered only under ``tests.settings_square``
and served in a separate process; this suite keeps seeing pi and fib. That
process talks to the same kind of Redis and database as this one (the
environment's ``REDIS_URL`` and ``DATABASE_URL``, or embedded ones), each
run with a key prefix and a test database of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compute.domain.kinds import registry

ROOT = Path(__file__).resolve().parent.parent


def test_this_suite_sees_the_two_built_in_kinds():
    assert registry.names() == ("pi", "fib")


@pytest.mark.slow
def test_a_third_kind_is_served_by_every_surface_in_its_own_process():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/kinds", "--ds", "tests.settings_square", "-q"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= 9, summary
    assert "skipped" not in summary and "failed" not in summary, summary
