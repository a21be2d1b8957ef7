"""gunicorn settings for live tests: the project's ``gunicorn.conf.py`` with plain logs.

``LiveServer(server="gunicorn")`` runs with the production configuration
(worker settings, control socket off, metrics folder), except logging:
gunicorn's own messages go to the server's log file in plain text rather
than the production JSON console configuration. The access log the tests
read is written by the application (``tests.support.live_wsgi``).
"""

from __future__ import annotations

import runpy
from pathlib import Path

_production = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
globals().update({k: v for k, v in _production.items() if not k.startswith("__")})

logconfig_dict: dict = {}
