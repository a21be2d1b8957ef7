"""Settings for mathsite: every value comes from the environment, read here only.

The defaults are the embedded ones (SQLite and a Redis server the project
starts under ``var/``) and the secure ones (``DEBUG`` off, secure cookies,
HSTS, SSL redirect, the proxy's ``X-Forwarded-Proto`` trusted). ``make run``
switches the TLS-only settings off for its plain-HTTP local server;
production sets ``SECRET_KEY`` and ``ALLOWED_HOSTS`` and points
``DATABASE_URL`` and ``REDIS_URL`` (or ``REDIS_CLUSTER_NODES``, or
``REDIS_SENTINELS``: ``mathsite.redis_config``) at shared services. Every variable is
listed with its default and meaning in ``.env.example`` (a test checks that
the two agree); ``docs/deploy.md`` is the runbook.

Bad configuration raises ``ImproperlyConfigured`` at start-up with a
message that names the variable to set, so a misconfigured process never
starts serving.
"""

from __future__ import annotations

from datetime import timedelta

import environ
from django.core.exceptions import ImproperlyConfigured

from compute.domain.rates import parse_rate
from mathsite import paths
from mathsite.redis_config import RedisTopology
from mathsite.sqlite import PrivateConnection

env = environ.Env()

BASE_DIR = paths.BASE_DIR
DATA_DIR = paths.data_dir()  # MATHSITE_DATA_DIR; the local files' names are in mathsite.paths


def _rate(name: str, default: str) -> str | None:
    """Return a DRF rate (``"N/second|minute|hour|day"``) from ``name``; empty or none: off."""
    value = env.str(name, default=default).strip()
    if value.lower() in ("", "none", "off"):
        return None
    try:
        parse_rate(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate. Set {name} to N/second, N/minute, N/hour "
            "or N/day (e.g. 20000/hour), or to 'none' to switch the throttle off."
        ) from None
    return value


# --- Core ---------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#core-settings

DEBUG = env.bool("DEBUG", default=False)

# Production refuses a key that check --deploy would flag (security.W009: under
# 50 characters, under 5 distinct ones, Django's "django-insecure-" prefix)
# and the value .env.example once carried: it is public, and the key signs
# sessions and keys the MAC of every cache entry (CACHE_SIGNING_KEY unset).
_GENERATE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(64))"'
_PUBLIC_KEYS = {"change-me-to-a-long-random-string-of-at-least-fifty-characters-0123456789"}


def _weak_key(key: str) -> str | None:
    """Return why ``key`` is no secret key for production, or None if it will do."""
    if key in _PUBLIC_KEYS:
        return "is the example value once committed in .env.example (public)"
    if len(key) < 50:
        return f"is shorter than 50 characters ({len(key)})"
    if len(set(key)) < 5:
        return "has fewer than 5 distinct characters"
    if key.startswith("django-insecure-"):
        return "starts with django-insecure- (a development key)"
    return None


SECRET_KEY = env.str("SECRET_KEY", default="")
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a long "
            f"random string, e.g. the output of {_GENERATE_KEY} (make run generates "
            "one under var/), or set DEBUG=true for development."
        )
    if (_why := _weak_key(SECRET_KEY)) is not None:
        raise ImproperlyConfigured(
            f"SECRET_KEY {_why}. Set it to a long random string of your own, the same on "
            f"every host of the deployment, e.g. the output of {_GENERATE_KEY}."
        )
elif not SECRET_KEY:
    SECRET_KEY = "django-insecure-development-only-key"  # noqa: S105 - DEBUG only

_hosts = env.list("ALLOWED_HOSTS", default=[])
if not _hosts:
    if not DEBUG:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is not set. Set ALLOWED_HOSTS to a comma-separated list "
            "of host names (e.g. ALLOWED_HOSTS=localhost,127.0.0.1)."
        )
    _hosts = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = _hosts

INSTALLED_APPS = [
    "mathsite.apps.MathsiteAdminConfig",  # django.contrib.admin with our default site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "axes",
    "compute",
]

# The request middleware is outermost so its timing, metrics and access log
# cover every response, redirects and hits included.
#
# CORS comes next, before anything that may answer (django-cors-headers asks
# to be as high as possible), so every response of a read carries its headers.
#
# Axes comes last, as its documentation asks: it turns a locked-out login
# attempt into its 429 response.
MIDDLEWARE = [
    "mathsite.logging.RequestMiddleware",
    "compute.http.cors.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "compute.http.gzip.GZipMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mathsite.urls"
WSGI_APPLICATION = "mathsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The project's overrides of Django's own templates (the admin's base
        # page with the site's icon); the apps' templates come after.
        "DIRS": [BASE_DIR / "mathsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Static files (WhiteNoise) ------------------------------------------------------
# https://whitenoise.readthedocs.io/en/stable/django.html

STATIC_URL = "static/"
STATIC_ROOT = paths.static_dir(DATA_DIR)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders when collectstatic has not run
# (tests, development); production runs collectstatic (make run does) and
# may switch this off to serve only the collected, pre-compressed files.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

# --- Database -----------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{paths.sqlite_file(DATA_DIR)}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers and one writer work at once; IMMEDIATE transactions and
    # a busy timeout make concurrent writers (several gunicorn workers) wait
    # instead of failing with "database is locked". The connection factory
    # keeps the file, its WAL and the data folder private (0600, 0700)
    # whatever the umask (mathsite.sqlite says why it acts before connecting).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.float("SQLITE_BUSY_TIMEOUT", default=20.0),
            "factory": PrivateConnection,
        }
    )
    # Keep the connection between requests: opening one and running the
    # PRAGMAs costs about 0.35 ms, a third of a cold pi request.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A PostgreSQL that is failing over or unreachable costs a request that
    # must compute at most this long before its 503 (cached hits never wait).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3)
    )
# How durable a result log row is when its request is answered. Every logged
# value can be computed again, so by default a row may be lost to a power cut or
# an OS crash (never to a crash of the service): SQLite's WAL with
# synchronous=NORMAL does not sync a commit (above), and on PostgreSQL the log's
# insert commits with synchronous_commit=off (up to about 0.6 s of the latest
# rows lost if the database server crashes; consistent either way). true makes
# PostgreSQL's insert wait for its WAL flush. docs/operations.md, "Durability".
RESULT_LOG_SYNCHRONOUS_COMMIT = env.bool("RESULT_LOG_SYNCHRONOUS_COMMIT", default=False)

# Bounds on every wait for the result log (compute.database): at most this many
# threads per process wait on the database at once, another waits this long for
# one of them, then the request gets a 503, so hits always find a free thread;
# and on PostgreSQL a step that gets no answer within the deadline (a paused or
# partitioned server, which TCP does not notice) has its connection broken.
DATABASE_CONCURRENCY = env.int("DATABASE_CONCURRENCY", default=2)
DATABASE_QUEUE_WAIT = env.float("DATABASE_QUEUE_WAIT", default=0.25)
_deadline = env.str("DATABASE_QUERY_DEADLINE", default="2").strip()
if _deadline.lower() in ("none", "off"):
    DATABASE_QUERY_DEADLINE: float | None = None
else:
    try:
        DATABASE_QUERY_DEADLINE = float(_deadline)
    except ValueError:
        DATABASE_QUERY_DEADLINE = 0.0  # refused just below, with the variable's name
    if not DATABASE_QUERY_DEADLINE > 0:
        raise ImproperlyConfigured(
            f"DATABASE_QUERY_DEADLINE={_deadline!r}: set it to a number of seconds > 0 "
            "(e.g. 2), or to 'none' to let a query wait on PostgreSQL for ever."
        )
if DATABASE_CONCURRENCY < 1 or DATABASE_QUEUE_WAIT < 0:
    raise ImproperlyConfigured(
        f"DATABASE_CONCURRENCY={DATABASE_CONCURRENCY!r}, "
        f"DATABASE_QUEUE_WAIT={DATABASE_QUEUE_WAIT!r}: set them to at least 1 and 0."
    )

# --- Cache (Redis through django-redis) -----------------------------------------
# https://github.com/jazzband/django-redis#configure-as-cache-backend

# One of: REDIS_URL (one server: redis://[:password@]host:port/db, rediss://
# for TLS, unix:///path?db=N), REDIS_CLUSTER_NODES (seed nodes of a Redis
# Cluster, host:port,...) or REDIS_SENTINELS (host:port,...) with
# REDIS_SENTINEL_MASTER. With none of them, the embedded server's socket.
# mathsite.redis_config turns them into django-redis options.
REDIS_CLUSTER_NODES = env.str("REDIS_CLUSTER_NODES", default="")
REDIS_SENTINELS = env.str("REDIS_SENTINELS", default="")
REDIS_URL = env.str("REDIS_URL", default="")
if not (REDIS_URL or REDIS_CLUSTER_NODES or REDIS_SENTINELS):
    REDIS_URL = f"unix://{paths.redis_socket(paths.redis_dir(DATA_DIR))}"
# Seconds a result stays in Redis; empty or "none" means never expire (as the
# old service did). The result log keeps everything regardless. Anything else
# but a positive whole number is refused here: Redis would refuse every SET
# with a zero or negative EX (each one an error, the cache never filled).
_ttl = env.str("CACHE_TTL", default="").strip()
if _ttl.lower() in ("", "none"):
    CACHE_TTL: int | None = None
elif _ttl.isascii() and _ttl.isdigit() and int(_ttl) > 0:
    CACHE_TTL = int(_ttl)
else:
    raise ImproperlyConfigured(
        f"CACHE_TTL={_ttl!r} is not a positive whole number of seconds. Set it to the "
        "seconds a result stays in Redis (e.g. 86400 for a day), or leave it empty (or "
        "none) for results that never expire."
    )
# Short timeouts and no retries: a dead or paused Redis costs a request at
# most one timeout, then the breaker in compute.cache.breaker skips Redis for
# REDIS_BACKOFF_SECONDS.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.25)
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.25)
REDIS_BACKOFF_SECONDS = env.float("REDIS_BACKOFF_SECONDS", default=2.0)

REDIS_TOPOLOGY = RedisTopology(
    url=REDIS_URL,
    cluster_nodes=REDIS_CLUSTER_NODES,
    sentinels=REDIS_SENTINELS,
    sentinel_master=env.str("REDIS_SENTINEL_MASTER", default=""),
    username=env.str("REDIS_USERNAME", default=""),
    password=env.str("REDIS_PASSWORD", default=""),
    sentinel_password=env.str("REDIS_SENTINEL_PASSWORD", default=""),
    tls=env.bool("REDIS_TLS", default=False),
    socket_timeout=REDIS_SOCKET_TIMEOUT,
    connect_timeout=REDIS_CONNECT_TIMEOUT,
    max_connections=env.int("REDIS_MAX_CONNECTIONS", default=64),
)
CACHES = {
    "default": REDIS_TOPOLOGY.cache_entry(
        prefix=env.str("CACHE_KEY_PREFIX", default="mathsite"),
        version=env.int("CACHE_VERSION", default=1),
        ttl=CACHE_TTL,
    ),
}

# Every result entry in Redis carries a keyed MAC (compute.cache.integrity) so
# that nothing this deployment did not write is ever served. Its key is derived
# from CACHE_SIGNING_KEY, or from SECRET_KEY when that is empty; every instance
# of a deployment must share it. Changing it makes every entry fail the check
# once (counted, then refilled from the result log).
CACHE_SIGNING_KEY = env.str("CACHE_SIGNING_KEY", default="")
if CACHE_SIGNING_KEY and len(CACHE_SIGNING_KEY) < 32:
    raise ImproperlyConfigured(
        "CACHE_SIGNING_KEY is shorter than 32 characters. Set it to a long random string "
        "shared by every instance of the deployment, or leave it empty to derive it from "
        "SECRET_KEY."
    )
# Largest entry read from Redis, stored or decompressed (bytes); empty: a
# little above the largest legal body, derived from FIB_MAX_N and
# PI_MAX_DIGITS (compute.domain.payload.max_entry_bytes: 471,261 by default).
_max_entry = env.str("CACHE_MAX_ENTRY_BYTES", default="").strip()
if _max_entry and not (_max_entry.isdigit() and int(_max_entry) > 0):
    raise ImproperlyConfigured(
        f"CACHE_MAX_ENTRY_BYTES={_max_entry!r} is not a positive number of bytes. Set it to "
        "one (e.g. 1048576), or leave it empty to derive it from FIB_MAX_N and PI_MAX_DIGITS."
    )
CACHE_MAX_ENTRY_BYTES: int | None = int(_max_entry) if _max_entry else None

# In-process tier in front of Redis: bounded in bytes; every process checks
# the shared eviction generation at most every LOCAL_CACHE_SYNC_SECONDS, so
# a DELETE reaches all processes within that time (docs/design.md: at most 1 s).
LOCAL_CACHE_MAX_BYTES = env.int("LOCAL_CACHE_MAX_BYTES", default=64 * 1024 * 1024)
LOCAL_CACHE_SYNC_SECONDS = env.float("LOCAL_CACHE_SYNC_SECONDS", default=0.5)

# Cache statistics (cache_stats, the admin's statistics page) cost the same
# whatever Redis holds: a database of at most CACHE_STATS_EXACT_MAX_KEYS keys
# is scanned (exact figures); a larger one is estimated from
# CACHE_STATS_SAMPLE_KEYS random keys times DBSIZE (labelled estimates).
CACHE_STATS_EXACT_MAX_KEYS = env.int("CACHE_STATS_EXACT_MAX_KEYS", default=5_000)
CACHE_STATS_SAMPLE_KEYS = env.int("CACHE_STATS_SAMPLE_KEYS", default=1_000)

# Stampede protection: the lock's time to live, renewed by its holder while it
# computes (so a killed holder blocks the key at most this long), and how long
# other requests wait for a live holder before computing themselves.
COMPUTE_LOCK_TIMEOUT = env.float("COMPUTE_LOCK_TIMEOUT", default=2.0)
COMPUTE_LOCK_WAIT = env.float("COMPUTE_LOCK_WAIT", default=20.0)

# --- Work per client (compute.admission) ----------------------------------------
# Beside the request throttle (THROTTLE_COMPUTE_RATE), what one client may make
# mathsite compute: digits per hour (charged in Redis before the work starts;
# the default is twice what warming fib 1..10,000 and pi 1..10,000 costs, and
# stops 200 fib(n) near 10**6 after about 95), and computations at once per
# process, in all and per client, with a short queue (so cached hits always
# find a free server thread). docs/operations.md, "No client can exhaust the service".


def _at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value!r}: set it to a number >= {minimum:g}.")


_digits = env.str("COMPUTE_DIGITS_PER_HOUR", default="20000000").strip().replace("_", "")
if _digits.lower() in ("", "none", "off"):
    COMPUTE_DIGITS_PER_HOUR: int | None = None
elif _digits.isdigit() and int(_digits) > 0:
    COMPUTE_DIGITS_PER_HOUR = int(_digits)
else:
    raise ImproperlyConfigured(
        f"COMPUTE_DIGITS_PER_HOUR={_digits!r}: set it to a whole number of digits per "
        "hour (e.g. 20000000), or to 'none' to switch the budget off."
    )
COMPUTE_CONCURRENCY = env.int("COMPUTE_CONCURRENCY", default=2)
COMPUTE_CONCURRENCY_PER_CLIENT = env.int("COMPUTE_CONCURRENCY_PER_CLIENT", default=1)
COMPUTE_QUEUE_LENGTH = env.int("COMPUTE_QUEUE_LENGTH", default=1)
COMPUTE_QUEUE_WAIT = env.float("COMPUTE_QUEUE_WAIT", default=2.0)
# Computations of at least this many (estimated) digits run in child processes at
# a lower priority, so they never hold a worker's GIL while its hits wait; none:
# every computation runs in the request's thread.
_offload = env.str("COMPUTE_OFFLOAD_DIGITS", default="50000").strip()
if _offload.lower() in ("", "none", "off"):
    COMPUTE_OFFLOAD_DIGITS: int | None = None
elif _offload.isdigit():
    COMPUTE_OFFLOAD_DIGITS = int(_offload)
else:
    raise ImproperlyConfigured(
        f"COMPUTE_OFFLOAD_DIGITS={_offload!r}: set it to a number of digits (e.g. 50000), "
        "or to 'none' to compute everything in the request's thread."
    )
_at_least("COMPUTE_CONCURRENCY", COMPUTE_CONCURRENCY, 1)
_at_least("COMPUTE_CONCURRENCY_PER_CLIENT", COMPUTE_CONCURRENCY_PER_CLIENT, 1)
_at_least("COMPUTE_QUEUE_LENGTH", COMPUTE_QUEUE_LENGTH, 0)
_at_least("COMPUTE_QUEUE_WAIT", COMPUTE_QUEUE_WAIT, 0)

# --- Kinds of result ----------------------------------------------------------
# Each kind is declared once (compute/domain/kinds/); this list registers them,
# in the order the API, the schema and the front page show them. A kind's
# limits are settings it names (below for the built-in two).

RESULT_KINDS = ["compute.domain.kinds.pi.KIND", "compute.domain.kinds.fib.KIND"]

# --- Limits -------------------------------------------------------------------

FIB_MAX_N = env.int("FIB_MAX_N", default=1_000_000)
PI_MAX_N = env.int("PI_MAX_N", default=10**18)
PI_MAX_DIGITS = env.int("PI_MAX_DIGITS", default=1_000)
# fib(n) mod M (``?mod=M``) costs O(log n), so its n may go far past FIB_MAX_N.
# Both are logged in 64-bit signed columns (every database's BIGINT).
FIB_MOD_MAX_N = env.int("FIB_MOD_MAX_N", default=10**18)
FIB_MOD_MAX_M = env.int("FIB_MOD_MAX_M", default=10**18)
for _name, _value in (("FIB_MOD_MAX_N", FIB_MOD_MAX_N), ("FIB_MOD_MAX_M", FIB_MOD_MAX_M)):
    if not 1 <= _value <= 2**63 - 1:
        raise ImproperlyConfigured(
            f"{_name}={_value}: set it between 1 and {2**63 - 1} (the result log's BIGINT)."
        )

# --- REST framework -----------------------------------------------------------
# https://www.django-rest-framework.org/api-guide/settings/

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "compute.api.exceptions.json_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # Only requests that reach the view (a cache miss: they may compute)
        # are throttled; cached hits are answered before DRF and never are.
        # The default lets one client warm 20,000 results an hour.
        "compute": _rate("THROTTLE_COMPUTE_RATE", "20000/hour"),
    },
    # How many proxies in front of the app append to X-Forwarded-For. The
    # client is the address that many hops from the right; 0 (the default)
    # trusts no header and uses the socket's address, so a client cannot
    # dodge the throttle by sending a forged X-Forwarded-For.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    # ?format=string is a result option (fib as a JSON string), not DRF's
    # renderer override.
    "URL_FORMAT_OVERRIDE": None,
}

# Who a client is (compute.clients) for the throttle, the digit budget, the
# compute slots and the login lock-out: the address NUM_PROXIES picks, an
# IPv4-mapped IPv6 address as IPv4, and an IPv6 address together with the rest
# of its network of this many bits (one host may take any address of its /64).
CLIENT_IPV6_PREFIX = env.int("CLIENT_IPV6_PREFIX", default=64)
if not 1 <= CLIENT_IPV6_PREFIX <= 128:
    raise ImproperlyConfigured(
        f"CLIENT_IPV6_PREFIX={CLIENT_IPV6_PREFIX}: set it to the bits of an IPv6 network "
        "that count as one client, from 1 to 128 (default 64: a host's /64)."
    )

# --- API schema (drf-spectacular) ----------------------------------------------------
# https://drf-spectacular.readthedocs.io/en/latest/settings.html

SPECTACULAR_SETTINGS = {
    "TITLE": "mathsite API",
    "DESCRIPTION": (
        "pi(n) by the Basel series and exact Fibonacci numbers, cached in Redis and "
        "logged in a database. Results are immutable: responses carry a weak ETag and "
        "answer If-None-Match with 304. Reads need no authentication; DELETE needs a "
        "staff token (`Authorization: Token <key>`) or a staff admin session, of a "
        'user holding the "delete computed result" permission.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets come from drf-spectacular-sidecar, served by
    # WhiteNoise from this site: the docs work without internet access.
    # (No ReDoc page: its template loads web fonts from a CDN.)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # compute.api.schema describes the result views (their bodies are built by
    # hand for speed, so there is no serializer to introspect) and the
    # routes of the old Flask service.
    "PREPROCESSING_HOOKS": ["compute.api.schema.preprocess_endpoints"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "compute.api.schema.postprocess_schema",
    ],
}

# --- Browsers on other origins (django-cors-headers) ----------------------------------
# https://github.com/adamchainz/django-cors-headers#configuration
# The reads (results, pictures, lists, the JSON index, the schema; chosen by URL
# name in compute.http.cors, not by CORS_URLS_REGEX) carry
# Access-Control-Allow-Origin: * and expose these headers on every response,
# with or without an Origin; no cookies cross origins. A preflight allows the
# methods and request headers below to any origin, and DELETE with an
# Authorization header (the token) on a result URL only to the origins of
# CORS_DELETE_ORIGINS (scheme://host[:port], comma-separated; default none).

CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ["GET", "HEAD", "OPTIONS"]
CORS_ALLOW_HEADERS = ["accept", "if-none-match"]
CORS_EXPOSE_HEADERS = ["Cache-Status", "ETag", "Retry-After"]
CORS_PREFLIGHT_MAX_AGE = 86400  # seconds a browser may reuse a preflight's answer
CORS_DELETE_ORIGINS = env.list("CORS_DELETE_ORIGINS", default=[])
for _origin in CORS_DELETE_ORIGINS:
    _scheme, _sep, _host = _origin.partition("://")
    if _scheme not in ("http", "https") or not _host or any(c in _host for c in "/?#* "):
        raise ImproperlyConfigured(
            f"CORS_DELETE_ORIGINS: {_origin!r} is not an origin. Set it to a comma-separated "
            "list of origins as browsers send them, scheme://host[:port] with no path or "
            "trailing slash (e.g. https://tools.example.com), or leave it empty."
        )

# --- Security -----------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
# The defaults are the secure ones for a deployment behind a TLS proxy; each
# is switchable for plain-HTTP runs (make run, benchmarks, tests).

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and scrapers talk plain HTTP to the app port: never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
if env.bool("SECURE_PROXY_SSL_HEADER", default=not DEBUG):
    # Only safe when the proxy overwrites X-Forwarded-Proto on every request.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Request size limits: the API takes no bodies and the admin only small forms.
# (gunicorn.conf.py bounds the request line and headers.)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env.int("DATA_UPLOAD_MAX_NUMBER_FIELDS", default=1000)
DATA_UPLOAD_MAX_NUMBER_FILES = 10
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# Passwords chosen through Django (createsuperuser and changepassword when
# interactive, the admin's password forms) must pass the four standard
# validators: not like the user's name or e-mail, 8+ characters, not one of
# the 20,000 most common, not all digits. (createsuperuser --noinput and
# set_password in code are not validated: Django's behaviour.)
# https://docs.djangoproject.com/en/5.2/topics/auth/passwords/#enabling-password-validation
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ADMIN_URL = env.str("ADMIN_URL", default="admin/")
if not ADMIN_URL.endswith("/") or ADMIN_URL.startswith("/"):
    raise ImproperlyConfigured(
        f"ADMIN_URL={ADMIN_URL!r}: set it to a relative path ending in a slash, e.g. staff-7f3a/."
    )

# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT failed
# logins for one username from one client address, further attempts for that
# username from that address get 429 for the cool-off time. Locking by the
# pair, not by the address alone, means a few failures on other usernames (a
# colleague's typos, someone guessing "admin") or from other addresses never
# lock the real staff out. An address whose failures over all usernames reach
# AXES_ADDRESS_FAILURE_LIMIT is locked too (mathsite.security's handler):
# each attempt costs a password hash, and the address lock is checked before
# it. Attempts are kept in the database (no pickle, shared by every host).
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AUTHENTICATION_BACKENDS = [
    "mathsite.security.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "mathsite.security.LoginLockoutHandler"
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=20)
_at_least("AXES_ADDRESS_FAILURE_LIMIT", AXES_ADDRESS_FAILURE_LIMIT, 1)
# The same client as the compute throttle, budget and slots (compute.clients:
# NUM_PROXIES above, CLIENT_IPV6_PREFIX below): behind a proxy, NUM_PROXIES
# must be set, or every client has the proxy's address.
AXES_CLIENT_IP_CALLABLE = "compute.clients.client_id"

# --- Metrics (Prometheus) ------------------------------------------------------------

# /metrics answers requests from these addresses or networks (direct
# connections only: a request relayed by a proxy is judged by the token), or
# carrying "Authorization: Bearer $METRICS_TOKEN". Everyone else gets 403.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where each gunicorn worker keeps its samples so that /metrics can add them
# up (gunicorn.conf.py creates a private one when this is unset). Empty
# outside gunicorn: one process, its own samples.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

# --- Logging ------------------------------------------------------------------
# JSON lines in production (one access line per request: request id, route,
# status, duration, cache outcome), readable lines in development.

LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: set it to json or plain.")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# One access-log line per request from mathsite.logging.RequestMiddleware.
REQUEST_LOG = env.bool("REQUEST_LOG", default=True)
# Cached hits are answered by the WSGI fast path (compute.http.wsgi), counted
# in the metrics but not written to the request log; false sends every hit
# through Django, which logs it (at about twice the cost per hit).
HIT_FAST_PATH = env.bool("HIT_FAST_PATH", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request": {"()": "mathsite.logging.RequestContextFilter"},
        "client_fault": {"()": "mathsite.logging.ClientFaultFilter"},
    },
    "formatters": {
        "json": {"()": "mathsite.logging.JsonFormatter"},
        "plain": {"()": "mathsite.logging.PlainFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request", "client_fault"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # 4xx are client errors, already in the access log; 5xx stay (with traces).
        "django.request": {"level": "ERROR"},
        "axes": {"level": "WARNING"},
    },
}
