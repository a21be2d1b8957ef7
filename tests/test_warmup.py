"""A worker loads its URLconf and views when it starts, not on its first request."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from mathsite.warmup import warm_up


def test_every_result_route_resolves_at_start():
    assert warm_up() == 5


def test_importing_the_wsgi_application_loads_the_views(tmp_path):
    code = (
        "import sys\n"
        "import mathsite.wsgi\n"
        "print('compute.api.views' in sys.modules, 'rest_framework.views' in sys.modules)\n"
    )
    env = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "localhost",
        "MATHSITE_DATA_DIR": str(tmp_path),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never contacted
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.stdout.split() == ["True", "True"], done.stderr[-2000:]
