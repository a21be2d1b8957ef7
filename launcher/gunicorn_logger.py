"""gunicorn's logger, minus the access-log work when there is no access log.

With a logging dict configured (gunicorn.conf.py has one, for JSON logs),
gunicorn builds every request's access-log atoms and formats the line even
when the records go to a discard handler: about a tenth of a cached hit's
time under load. mathsite writes its own access log (mathsite.logging), so
gunicorn's is off unless GUNICORN_ACCESS_LOG names a destination.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger as GunicornLogger


class Logger(GunicornLogger):
    """gunicorn's Logger whose ``access`` does nothing unless an access log is configured."""

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)
