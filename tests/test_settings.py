"""Settings and deployment security: refusals, check --deploy, and the hardening they promise.

Mirrors ``mathsite/settings.py`` (with ``mathsite/security.py``). Start-up
behaviour is tested in subprocesses with a controlled environment (the
settings are read once per process); the rest runs through the test
client against the run's database and Redis, or a password-protected
redis-server the test starts on a free port.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from compute.cache.serializer import TaggedSerializer
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from tests.support.caches import PointedCache, backend_at
from tests.support.hashers import CountingHasher
from tests.support.servers import RedisServer

BASE_DIR = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "mathsite.example.com",
    "REDIS_URL": "redis://127.0.0.1:1/0",  # never contacted at start-up
}
PLAIN_HTTP = {
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
    "SECURE_PROXY_SSL_HEADER": "false",
}


def run_django(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run ``args`` (a manage.py command, or ``-c CODE``) with only ``env`` configured."""
    clean = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DJANGO_SETTINGS_MODULE": "mathsite.settings",
        "MATHSITE_DATA_DIR": str(tmp_path),
        **env,
    }
    command = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "manage.py", *args]
    return subprocess.run(
        command, env=clean, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )


SETUP = "import django; django.setup(); "


# --- refusing to start -----------------------------------------------------------------


def test_production_refuses_to_start_without_secret_key(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run_django(tmp_path, env, "-c", SETUP)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set." in result.stderr
    assert "Set the SECRET_KEY environment variable" in result.stderr
    assert "secrets.token_urlsafe(64)" in result.stderr  # how to make one


def test_production_refuses_a_weak_or_public_secret_key(tmp_path):
    generate = 'python -c "import secrets; print(secrets.token_urlsafe(64))"'
    for key, why in [
        (
            "change-me-to-a-long-random-string-of-at-least-fifty-characters-0123456789",
            "is the example value once committed in .env.example (public)",
        ),
        ("change-me", "is shorter than 50 characters (9)"),
        ("abcd" * 20, "has fewer than 5 distinct characters"),
        ("django-insecure-" + secrets.token_urlsafe(50), "starts with django-insecure-"),
    ]:
        result = run_django(tmp_path, {**PRODUCTION, "SECRET_KEY": key}, "-c", SETUP)
        assert result.returncode != 0, key
        assert f"ImproperlyConfigured: SECRET_KEY {why}" in result.stderr, result.stderr[-500:]
        assert generate in result.stderr
        assert key not in result.stderr.replace(f"SECRET_KEY {why}", "")  # never echoed
    # DEBUG is development: any key, or none, will do there.
    result = run_django(
        tmp_path, {**PRODUCTION, "SECRET_KEY": "change-me", "DEBUG": "true"}, "-c", SETUP
    )
    assert result.returncode == 0, result.stderr[-500:]


def test_env_example_exported_unchanged_starts_no_production_process(tmp_path):
    """The committed example carries no usable secret: exported as is, production refuses."""
    example = (BASE_DIR / ".env.example").read_text()
    exported = dict(
        line.split("=", 1) for line in example.splitlines() if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )
    assert exported["SECRET_KEY"] == ""
    result = run_django(tmp_path, {**exported, "REDIS_URL": PRODUCTION["REDIS_URL"]}, "-c", SETUP)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "ALLOWED_HOSTS"}
    result = run_django(tmp_path, env, "-c", SETUP)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is not set. Set ALLOWED_HOSTS to a comma-separated list" in result.stderr


def test_bad_values_are_refused_with_what_to_set(tmp_path):
    for name, value, message in [
        ("THROTTLE_COMPUTE_RATE", "fast", "Set THROTTLE_COMPUTE_RATE to N/second"),
        ("ADMIN_URL", "/admin", "set it to a relative path ending in a slash"),
        ("LOG_FORMAT", "xml", "set it to json or plain"),
        ("CACHE_SIGNING_KEY", "short", "CACHE_SIGNING_KEY is shorter than 32 characters"),
        ("CACHE_MAX_ENTRY_BYTES", "1MB", "CACHE_MAX_ENTRY_BYTES='1MB' is not a positive number"),
        ("FIB_MOD_MAX_N", str(2**63), "FIB_MOD_MAX_N=9223372036854775808: set it between 1"),
        ("FIB_MOD_MAX_M", "0", "FIB_MOD_MAX_M=0: set it between 1 and 9223372036854775807"),
        ("CLIENT_IPV6_PREFIX", "129", "CLIENT_IPV6_PREFIX=129: set it to the bits of an IPv6"),
        ("CACHE_TTL", "abc", "CACHE_TTL='abc' is not a positive whole number of seconds. Set"),
        ("CACHE_TTL", "-1", "CACHE_TTL='-1' is not a positive whole number of seconds."),
        ("CACHE_TTL", "0", "or leave it empty (or none) for results that never expire"),
        ("CACHE_TTL", "1.5", "CACHE_TTL='1.5' is not a positive whole number of seconds."),
        ("CORS_DELETE_ORIGINS", "https://a.example/", "'https://a.example/' is not an origin"),
        ("CORS_DELETE_ORIGINS", "a.example", "'a.example' is not an origin. Set it to"),
        ("DATABASE_QUERY_DEADLINE", "0", "DATABASE_QUERY_DEADLINE='0': set it to a number of"),
        ("DATABASE_QUERY_DEADLINE", "soon", "or to 'none' to let a query wait on PostgreSQL"),
        ("DATABASE_CONCURRENCY", "0", "DATABASE_CONCURRENCY=0, DATABASE_QUEUE_WAIT=0.25: set"),
    ]:
        result = run_django(tmp_path, {**PRODUCTION, name: value}, "-c", SETUP)
        assert result.returncode != 0, name
        assert message in result.stderr, result.stderr[-500:]


def test_cache_ttl_is_a_positive_number_of_seconds_or_none(tmp_path):
    code = SETUP + "from django.conf import settings; print(repr(settings.CACHE_TTL))"
    for value, expected in [("", "None"), ("none", "None"), (" None ", "None"), ("86400", "86400")]:
        result = run_django(tmp_path, {**PRODUCTION, "CACHE_TTL": value}, "-c", code)
        assert result.returncode == 0, result.stderr[-500:]
        assert result.stdout.strip() == expected, value


def test_database_query_deadline_is_seconds_or_none(tmp_path):
    code = SETUP + "from django.conf import settings; print(settings.DATABASE_QUERY_DEADLINE)"
    for value, expected in [("none", "None"), ("0.5", "0.5"), ("3", "3.0")]:
        result = run_django(tmp_path, {**PRODUCTION, "DATABASE_QUERY_DEADLINE": value}, "-c", code)
        assert result.returncode == 0, result.stderr[-500:]
        assert result.stdout.strip() == expected, value


def test_development_starts_without_secrets_and_admin_url_is_configurable(tmp_path):
    code = (
        SETUP + "from django.conf import settings; from django.urls import reverse; "
        "print(settings.DEBUG, settings.ALLOWED_HOSTS, settings.LOG_FORMAT, "
        "reverse('admin:index'), settings.SECURE_SSL_REDIRECT)"
    )
    result = run_django(tmp_path, {"DEBUG": "true", "ADMIN_URL": "staff-7f3a/"}, "-c", code)
    assert result.returncode == 0, result.stderr
    expected = "True ['localhost', '127.0.0.1', '[::1]'] plain /staff-7f3a/ False"
    assert result.stdout.strip() == expected


def test_check_deploy_is_clean_with_production_defaults(tmp_path):
    result = run_django(tmp_path, PRODUCTION, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_flags_each_plain_http_switch(tmp_path):
    result = run_django(
        tmp_path, {**PRODUCTION, **PLAIN_HTTP}, "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode != 0
    found = set(re.findall(r"security\.W\d+", result.stderr))
    assert found == {"security.W004", "security.W008", "security.W012", "security.W016"}


def test_env_example_lists_every_variable_the_code_reads():
    readers = [
        BASE_DIR / "mathsite" / "settings.py",
        BASE_DIR / "gunicorn.conf.py",
        BASE_DIR / "launcher" / "embedded_redis.py",
        BASE_DIR / "launcher" / "serve.py",
        BASE_DIR / "mathsite" / "paths.py",
        BASE_DIR / "launcher" / "server.py",
    ]
    pattern = re.compile(
        r"""(?:env\.(?:str|bool|int|float|list|db_url|setdefault)|_rate|_env\.get|environ\.get|env\.get)"""
        r"""\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    )
    read = {name for path in readers for name in pattern.findall(path.read_text())}
    example = (BASE_DIR / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert {"SECRET_KEY", "REDIS_URL", "DATABASE_URL", "WEB_CONCURRENCY"} <= read
    assert read - listed == set(), "read by the code but missing from .env.example"
    assert listed - read == set(), "listed in .env.example but read by nothing"


# --- hardening through the stack -------------------------------------------------------------


@pytest.fixture
def fast_hashing(settings):
    """A cheap password hasher: these tests count login attempts, not hashing rounds."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
def test_admin_login_is_throttled_after_repeated_failures(client, settings, fast_hashing):
    User.objects.create_user("boss", password="right-horse-battery", is_staff=True)
    login = reverse("admin:login")
    form = {"username": "boss", "password": "wrong", "next": "/"}
    statuses = [client.post(login, form).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form, with an error
    assert statuses[-1] == 429  # the limit-th failure locks the client out
    locked = client.post(login, {**form, "password": "right-horse-battery"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_admin_login_works_under_the_limit_and_test_client_login_is_unaffected(
    client, fast_hashing
):
    User.objects.create_user("boss", password="right-horse-battery", is_staff=True)
    login = reverse("admin:login")
    assert client.post(login, {"username": "boss", "password": "wrong"}).status_code == 200
    ok = client.post(login, {"username": "boss", "password": "right-horse-battery", "next": "/x"})
    assert ok.status_code == 302 and ok["Location"] == "/x"
    client.logout()
    # authenticate() without a request (the test client's login, scripts) is
    # not an HTTP login attempt: nothing to throttle, nothing refused.
    assert client.login(username="boss", password="right-horse-battery")


@pytest.mark.django_db
def test_passwords_must_pass_the_four_standard_validators(client, fast_hashing):
    boss = User.objects.create_user(
        "bossman", email="bossman@example.com", password="right-horse-battery", is_staff=True
    )
    refused = {}
    for weak in ("tiny7", "80492637155", "password123", "bossman@example"):
        with pytest.raises(ValidationError) as caught:
            validate_password(weak, user=boss)
        refused[weak] = {error.code for error in caught.value.error_list}
    assert refused == {
        "tiny7": {"password_too_short"},
        "80492637155": {"password_entirely_numeric"},
        "password123": {"password_too_common"},
        "bossman@example": {"password_too_similar"},
    }
    # Through the admin's own form: a weak one is refused, the old password kept.
    client.force_login(boss)
    change = reverse("admin:password_change")
    form = {"old_password": "right-horse-battery"}
    weak = client.post(
        change, {**form, "new_password1": "password123", "new_password2": "password123"}
    )
    assert weak.status_code == 200 and "This password is too common." in weak.content.decode()
    boss.refresh_from_db()
    assert boss.check_password("right-horse-battery")
    strong = "stapled-quartz-lantern-42"
    done = client.post(change, {**form, "new_password1": strong, "new_password2": strong})
    assert done.status_code == 302


def _fail(client, username: str, address: str, times: int, **extra) -> list[int]:
    """Post ``times`` wrong passwords for ``username`` from ``address``; return the statuses."""
    form = {"username": username, "password": "wrong", "next": "/x"}
    login = reverse("admin:login")
    posts = [client.post(login, form, REMOTE_ADDR=address, **extra) for _ in range(times)]
    return [response.status_code for response in posts]


def _log_in(username: str, address: str, **extra) -> int:
    """Post the right password from a fresh client; return the status (302 = logged in)."""
    form = {"username": username, "password": "right-horse-battery", "next": "/x"}
    return Client().post(reverse("admin:login"), form, REMOTE_ADDR=address, **extra).status_code


@pytest.mark.django_db
def test_failures_on_another_username_do_not_lock_out_staff_at_that_address(
    client, settings, fast_hashing
):
    User.objects.create_user("alice", password="right-horse-battery", is_staff=True)
    limit = settings.AXES_FAILURE_LIMIT
    assert _fail(client, "mallory", "198.51.100.7", limit)[-1] == 429  # mallory is locked
    assert _log_in("mallory", "198.51.100.7") == 429
    assert _log_in("alice", "198.51.100.7") == 302


@pytest.mark.django_db
def test_lockout_is_per_username_and_address(client, settings, fast_hashing):
    User.objects.create_user("alice", password="right-horse-battery", is_staff=True)
    limit = settings.AXES_FAILURE_LIMIT
    assert _fail(client, "alice", "198.51.100.7", limit)[-1] == 429
    assert _log_in("alice", "203.0.113.9") == 302  # another address: not locked
    assert _log_in("alice", "198.51.100.7") == 429  # the failing address still is


@pytest.fixture
def counted_hashing(settings):
    """Cheap hashing that counts each hash: what a login attempt costs, in hashes."""
    settings.PASSWORD_HASHERS = ["tests.support.hashers.CountingHasher"]
    CountingHasher.hashes.clear()
    return CountingHasher.hashes


@pytest.mark.django_db
def test_an_address_trying_many_usernames_is_locked_before_any_hash(
    client, settings, counted_hashing
):
    """Each attempt costs a hash (unknown usernames too) until the address lock: then none."""
    settings.AXES_ADDRESS_FAILURE_LIMIT = limit = 8
    User.objects.create_user("alice", password="right-horse-battery", is_staff=True)
    attacker = "198.51.100.7"
    costs, statuses = [], []
    for i in range(limit + 4):  # a new username every time: no pair ever reaches 5
        before = len(counted_hashing)
        statuses += _fail(client, f"guess{i}", attacker, 1)
        costs.append(len(counted_hashing) - before)
    assert statuses == [200] * (limit - 1) + [429] * 5  # the limit-th failure locks it
    assert costs == [1] * limit + [0] * 4  # locked: refused before the hash
    before = len(counted_hashing)
    assert _log_in("alice", attacker) == 429  # the address is locked, for everyone at it
    assert len(counted_hashing) == before
    assert _log_in("alice", "203.0.113.9") == 302  # other addresses are not


@pytest.mark.django_db
def test_a_locked_pair_costs_no_hash_and_a_few_failures_lock_no_address(
    client, settings, counted_hashing
):
    User.objects.create_user("alice", password="right-horse-battery", is_staff=True)
    limit = settings.AXES_FAILURE_LIMIT
    assert limit < settings.AXES_ADDRESS_FAILURE_LIMIT
    assert _fail(client, "mallory", "198.51.100.7", limit)[-1] == 429
    before = len(counted_hashing)
    assert _fail(client, "mallory", "198.51.100.7", 3) == [429] * 3
    assert len(counted_hashing) == before
    assert _log_in("alice", "198.51.100.7") == 302  # the address itself is not locked


@pytest.mark.django_db
def test_behind_a_proxy_num_proxies_keeps_clients_apart(client, settings, fast_hashing):
    """Every request comes from the proxy (127.0.0.1); X-Forwarded-For names the client."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    User.objects.create_user("alice", password="right-horse-battery", is_staff=True)
    limit = settings.AXES_FAILURE_LIMIT
    attacker = {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert _fail(client, "alice", "127.0.0.1", limit, **attacker)[-1] == 429
    assert _log_in("alice", "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9") == 302
    assert _log_in("alice", "127.0.0.1", **attacker) == 429


@pytest.mark.django_db
def test_the_lockout_knows_a_client_by_its_ipv4_address_or_its_ipv6_slash_64(
    client, settings, fast_hashing
):
    """The client of the throttle and the budget (``compute.clients.client_id``)."""
    User.objects.create_user("alice", password="right-horse-battery", is_staff=True)
    limit = settings.AXES_FAILURE_LIMIT
    assert _fail(client, "alice", "::ffff:198.51.100.7", limit)[-1] == 429
    assert _log_in("alice", "198.51.100.7") == 429  # the same IPv4 client, unmapped
    assert _fail(client, "alice", "2001:db8:1:2::1", limit)[-1] == 429
    assert _log_in("alice", "2001:db8:1:2:aaaa:bbbb:cccc:dddd") == 429  # the same /64
    assert _log_in("alice", "2001:db8:1:3::1") == 302  # another /64: another client


@pytest.mark.django_db
def test_login_failures_leave_nothing_pickled_in_the_cache(
    client, redis_client, clean_cache, fast_hashing
):
    login = reverse("admin:login")
    for _ in range(3):
        client.post(login, {"username": "nobody", "password": "wrong"})
    client.get("/api/fib/12/")
    serializer = TaggedSerializer({})
    keys = list(redis_client.scan_iter(match=clean_cache.make_key("*")))
    assert keys  # the result above is there
    for key in keys:
        if redis_client.type(key) != b"string":
            continue
        value = redis_client.get(key)
        assert not value.startswith(b"\x80"), key  # no pickle protocol header
        if value.isdigit():
            continue  # counters are stored as plain integers
        if value[:1] in (b"b", b"j"):
            serializer.loads(value)  # ours: bytes or JSON
        else:
            assert value[:1] in (b"r", b"z"), key  # a result payload (compute.domain.payload)


@pytest.mark.django_db
def test_request_bodies_over_the_limit_are_refused(client, settings):
    too_big = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = client.post(reverse("admin:login"), {"username": "u", "password": too_big})
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request."}


@pytest.mark.django_db
def test_probes_are_never_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/fib/3/").status_code == 301  # everything else is


@pytest.fixture
def password_redis(tmp_path):
    """A redis-server on a free port that requires a password; yields (port, password)."""
    password = secrets.token_hex(12)
    server = RedisServer(tmp_path, password=password).start()
    try:
        yield server.port, password
    finally:
        server.kill()


def test_a_redis_url_with_a_password_works(password_redis):
    port, password = password_redis
    query = ResultQuery("fib", 10)
    cache = PointedCache(backend_at(f"redis://:{password}@127.0.0.1:{port}/0"))
    assert cache.ping() == (True, "ok", "ok")
    assert cache.set(query, Payload.from_text(query, "55"))
    assert cache.get_shared(query).text == "55"

    wrong = PointedCache(backend_at(f"redis://:not-{password}@127.0.0.1:{port}/0"))
    reachable, reason, detail = wrong.ping()
    assert not reachable and reason == "authentication" and "AuthenticationError" in detail
    assert wrong.set(query, Payload.from_text(query, "55")) is False  # breaker, not a crash


def test_a_server_worker_keeps_no_secret_in_the_environ_granian_gives_each_request(tmp_path):
    # granian's WSGI wrapper copies the worker's os.environ into every request's
    # environ; mathsite.wsgi removes the secrets first (mathsite.environment).
    code = SETUP + "\n".join(
        [
            "import os",
            "from granian.wsgi import _callback_wrapper",
            "names = ('SECRET_KEY', 'DATABASE_URL', 'REDIS_URL', 'METRICS_TOKEN')",
            "before = {k for k in names if k in os.environ}",
            "import mathsite.wsgi",
            "seen = {}",
            "def app(environ, start):",
            "    seen.update(environ)",
            "    start('200 OK', [])",
            "    return [b'']",
            "class Proto:",
            "    def response_bytes(self, status, headers, body): pass",
            "runner = _callback_wrapper(app, {})",
            "runner(Proto(), {'PATH_INFO': '/', 'REQUEST_METHOD': 'GET'})",
            "print(sorted(before), sorted(k for k in before if k in seen), 'PATH' in seen)",
        ]
    )
    secrets_env = {
        **PRODUCTION,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "METRICS_TOKEN": "t" * 40,
    }
    result = run_django(tmp_path, secrets_env, "-c", code)
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.strip().splitlines()[-1] == (
        "['DATABASE_URL', 'METRICS_TOKEN', 'REDIS_URL', 'SECRET_KEY'] [] True"
    )
