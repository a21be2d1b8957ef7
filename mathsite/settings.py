"""Settings for mathsite: every value comes from the environment, read here only.

The defaults are the embedded ones (SQLite and a Redis server the project
starts under ``var/``) and the secure ones (``DEBUG`` off, secure cookies,
HSTS, SSL redirect). ``make run`` switches the TLS-only settings off for its
plain-HTTP local server; production sets ``SECRET_KEY`` and ``ALLOWED_HOSTS``
and points ``DATABASE_URL`` and ``REDIS_URL`` at shared services. Every
variable is listed with its default in ``.env.example``.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(environ.Env().str("MATHSITE_DATA_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

# --- Core ---------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#core-settings

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable "
            "(make run generates one under var/), or set DEBUG=true for development."
        )
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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "compute",
]

# The hot-result middleware sits inside the ones that add headers to every
# response (security, gzip, frame options) so a cached hit it answers carries
# exactly the headers the full DRF view would, and outside the session,
# CSRF and auth machinery that a public read does not need.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "compute.middleware.HotResultMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "mathsite.urls"
WSGI_APPLICATION = "mathsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders when collectstatic has not run
# (tests, development); production runs collectstatic (make run does).
WHITENOISE_USE_FINDERS = True

# --- Database -----------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers and one writer work at once; IMMEDIATE transactions and
    # a busy timeout make concurrent writers (several gunicorn workers) wait
    # instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.float("SQLITE_BUSY_TIMEOUT", default=20.0),
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# --- Cache (Redis through django-redis) -----------------------------------------
# https://github.com/jazzband/django-redis#configure-as-cache-backend

REDIS_URL = env.str("REDIS_URL", default=f"unix://{DATA_DIR / 'redis' / 'redis.sock'}")
# Seconds a result stays in Redis; empty or "none" means never expire (as the
# old service did). The result log keeps everything regardless.
_ttl = env.str("CACHE_TTL", default="")
CACHE_TTL: int | None = None if _ttl.lower() in ("", "none", "0") else int(_ttl)
# Short timeouts and no retries: a dead or paused Redis costs a request at
# most one timeout, then the breaker in compute.cache skips Redis for
# REDIS_BACKOFF_SECONDS.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.25)
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.25)
REDIS_BACKOFF_SECONDS = env.float("REDIS_BACKOFF_SECONDS", default=2.0)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="mathsite"),
        "VERSION": env.int("CACHE_VERSION", default=1),
        "TIMEOUT": CACHE_TTL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SERIALIZER": "compute.cache_serializer.TaggedSerializer",
            "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "CONNECTION_POOL_KWARGS": {
                "retry": Retry(NoBackoff(), 0),
                "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=64),
            },
        },
    },
}

# In-process tier in front of Redis: bounded in bytes; every process checks
# the shared eviction generation at most every LOCAL_CACHE_SYNC_SECONDS, so
# a DELETE reaches all processes within that time (README: at most 1 s).
LOCAL_CACHE_MAX_BYTES = env.int("LOCAL_CACHE_MAX_BYTES", default=64 * 1024 * 1024)
LOCAL_CACHE_SYNC_SECONDS = env.float("LOCAL_CACHE_SYNC_SECONDS", default=0.5)

# Stampede protection: how long a computation may hold its lock, and how long
# other requests wait for it before computing themselves.
COMPUTE_LOCK_TIMEOUT = env.float("COMPUTE_LOCK_TIMEOUT", default=30.0)
COMPUTE_LOCK_WAIT = env.float("COMPUTE_LOCK_WAIT", default=20.0)

# --- Limits -------------------------------------------------------------------

FIB_MAX_N = env.int("FIB_MAX_N", default=1_000_000)
PI_MAX_N = env.int("PI_MAX_N", default=10**18)
PI_MAX_DIGITS = env.int("PI_MAX_DIGITS", default=1_000)

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
    "EXCEPTION_HANDLER": "compute.exceptions.json_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # Only requests that compute are throttled; cached hits are not.
        "compute": env.str("THROTTLE_COMPUTE_RATE", default="20000/hour"),
    },
    # ?format=string is a result option (fib as a JSON string), not DRF's
    # renderer override.
    "URL_FORMAT_OVERRIDE": None,
}

# --- Security -----------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("SECURE_PROXY_SSL_HEADER", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
ADMIN_URL = env.str("ADMIN_URL", default="admin/")

# --- Logging ------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
