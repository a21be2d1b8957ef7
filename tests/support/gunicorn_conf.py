"""gunicorn settings for live tests: the project's ``gunicorn.conf.py`` with plain log files.

Live servers run with the production configuration (worker settings,
control socket off, metrics folder), except logging: the tests read
gunicorn's access log in their own format (``--access-logfile``,
``--access-logformat``: pid, test id, status, bytes, duration), which the
production JSON console configuration would redirect.
"""

from __future__ import annotations

import runpy
from pathlib import Path

_production = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
globals().update({k: v for k, v in _production.items() if not k.startswith("__")})

logconfig_dict: dict = {}
