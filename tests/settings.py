"""Settings for the test suite: mathsite's settings with an isolated Redis namespace.

Importing this module (pytest-django does, before any test) fills in the
environment the production settings insist on, gives this run a key
prefix of its own, and, when no ``REDIS_URL`` is configured, starts an
embedded Redis server in a temporary folder for the run (stopped at exit).
With ``REDIS_URL`` set (CI's configured run) that server is used, in the
database index the URL names. Only this run's prefix is ever cleared.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

# 50+ random characters: production settings refuse a shorter key.
os.environ.setdefault("SECRET_KEY", "test-only-" + uuid.uuid4().hex + uuid.uuid4().hex)
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ["DEBUG"] = "false"
for _name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ[_name] = "false"
os.environ["SECURE_HSTS_SECONDS"] = "0"
# One prefix per run (and per xdist worker), so parallel runs never collide.
os.environ["CACHE_KEY_PREFIX"] = "mathsite-test-{}-{}".format(
    uuid.uuid4().hex[:8], os.environ.get("PYTEST_XDIST_WORKER", "main")
)

if not os.environ.get("REDIS_URL"):
    from launcher import embedded_redis

    _folder = Path(tempfile.mkdtemp(prefix="mathsite-redis-"))
    _process = embedded_redis.start(_folder)
    os.environ["REDIS_URL"] = embedded_redis.url_for(_folder)

    def _stop() -> None:
        embedded_redis.stop(_folder, _process)
        shutil.rmtree(_folder, ignore_errors=True)

    atexit.register(_stop)

from mathsite.settings import *  # noqa: E402, F403

# WhiteNoise warns about a missing STATIC_ROOT; tests serve via finders.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# A test database of this run's own on a shared PostgreSQL: concurrent runs
# (and their xdist workers, which pytest-django suffixes with _gw0, ...)
# would otherwise all create and drop the one "test_<name>" database.
TEST_DATABASE_NAME = f"test_mathsite_{os.getpid()}_{uuid.uuid4().hex[:8]}"
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"].setdefault("TEST", {})["NAME"] = TEST_DATABASE_NAME  # noqa: F405
