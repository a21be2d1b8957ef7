"""gunicorn settings for mathsite; gunicorn reads this file from the working directory.

Worker count and timeout come from the environment (WEB_CONCURRENCY,
GUNICORN_TIMEOUT). gunicorn's control socket is off: its default path is
shared by every gunicorn of the user, so several instances on one machine
(tests, benchmarks, two app instances) would otherwise fight over it.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
control_socket_disable = True
