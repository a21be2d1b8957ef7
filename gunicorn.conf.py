"""gunicorn configuration for mathsite, read from the environment (gunicorn loads this file
from the working directory by itself).

Production command, from the repository root::

    gunicorn                      # = gunicorn -c gunicorn.conf.py mathsite.wsgi:application

Everything is an environment variable (listed in .env.example): ``GUNICORN_BIND``
(default ``127.0.0.1:$PORT``, PORT defaulting to 8000), ``WEB_CONCURRENCY`` (worker
processes, default 2), ``GUNICORN_THREADS``, ``GUNICORN_TIMEOUT``,
``GUNICORN_GRACEFUL_TIMEOUT``, ``GUNICORN_KEEPALIVE``, ``GUNICORN_MAX_REQUESTS``,
``GUNICORN_ACCESS_LOG``, ``FORWARDED_ALLOW_IPS``, ``LOG_FORMAT``/``LOG_LEVEL``.

Metrics: every worker is a process, so Prometheus counters must be shared
through files. ``PROMETHEUS_MULTIPROC_DIR`` is set here, before any worker
imports prometheus_client (a private temporary folder unless one is
given), emptied when the master starts (stale samples of a previous run
would be added to this one's), and a worker's files are kept after it
exits: counters must not go backwards when gunicorn replaces a worker (its
per-process gauges, such as the in-process tier's size, go with it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_env = os.environ

wsgi_app = "mathsite.wsgi:application"
bind = [_env.get("GUNICORN_BIND", f"127.0.0.1:{_env.get('PORT', '8000')}")]
workers = int(_env.get("WEB_CONCURRENCY", "2"))
threads = int(_env.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
# A request may compute fib(1,000,000) (tens of ms) or wait for another
# worker's computation (COMPUTE_LOCK_WAIT, 20 s): the timeout is above both.
timeout = int(_env.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(_env.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(_env.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(_env.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
# gunicorn's control socket is off: its default path is shared by every
# gunicorn of the user, so several instances on one machine (tests,
# benchmarks, two app instances) would otherwise fight over it.
control_socket_disable = True
# Which peers may set X-Forwarded-Proto/For for gunicorn itself (the TLS proxy).
forwarded_allow_ips = _env.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Request size limits at the server: the API's requests are one short line.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# mathsite.logging.RequestMiddleware writes the access log (with request id,
# route and cache outcome); gunicorn's own access log is off unless asked.
accesslog = _env.get("GUNICORN_ACCESS_LOG") or None
# ... and with it off, gunicorn does not even build the access-log line.
logger_class = "launcher.gunicorn_logger.Logger"
errorlog = "-"
loglevel = _env.get("LOG_LEVEL", "info").lower()
_debug = _env.get("DEBUG", "false").lower() in ("1", "true", "yes", "on")
_format = _env.get("LOG_FORMAT", "plain" if _debug else "json")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "mathsite.logging.JsonFormatter"},
        "plain": {"()": "mathsite.logging.PlainFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": _format},
        "discard": {"class": "logging.NullHandler"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
        # gunicorn emits access records whenever a logging dict is configured:
        # they go nowhere unless GUNICORN_ACCESS_LOG asks for them.
        "gunicorn.access": {
            "handlers": ["console" if accesslog else "discard"],
            "level": "INFO",
            "propagate": False,
        },
    },
}

# --- Prometheus multi-process mode ---------------------------------------------------

_owned_metrics_dir = ""
if not _env.get("PROMETHEUS_MULTIPROC_DIR"):
    _owned_metrics_dir = tempfile.mkdtemp(prefix="mathsite-metrics-")
    _env["PROMETHEUS_MULTIPROC_DIR"] = _owned_metrics_dir


def on_starting(server: object) -> None:
    """Empty the metrics folder before the first worker starts."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def child_exit(server: object, worker: object) -> None:
    """Drop the per-process gauges of a worker that exited (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    """Remove the metrics folder this configuration created (not one it was given)."""
    if _owned_metrics_dir:
        shutil.rmtree(_owned_metrics_dir, ignore_errors=True)
