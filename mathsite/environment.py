"""The secrets a server worker keeps out of its process environment once settings are read.

granian's own WSGI wrapper builds each request's environ from a copy of the
worker's ``os.environ`` (CGI style, as PEP 3333 allows), so every variable
of the process reaches ``request.META``: the database and Redis URLs with
their passwords, ``SECRET_KEY``, the metrics token. The project's server
command leaves that copy out (``launcher.shared_listener.request_environ``);
a granian started another way still makes it, and the computation processes
a worker starts inherit its environment. Django reads these variables once,
when the settings load; after that the worker needs none of them in its
environment, nor do the computation processes. ``forget_secrets`` removes
them (``mathsite.wsgi`` calls it in every worker, before the server copies
the environment).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# The variables the settings read that carry a secret (a key, a token, a
# password, or a URL that may hold one).
SECRET_VARIABLES = (
    "SECRET_KEY",
    "CACHE_SIGNING_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_SENTINEL_PASSWORD",
    "METRICS_TOKEN",
)


def forget_secrets(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove the secret variables from ``environ``; return the names removed."""
    removed = [name for name in SECRET_VARIABLES if name in environ]
    for name in removed:
        del environ[name]
    return removed
