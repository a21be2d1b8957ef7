"""WSGI entry point (granian or gunicorn: ``mathsite.wsgi:application``).

Django's application, wrapped by the fast path that answers cached hits
without Django's request cycle (``compute.http.wsgi``), and computes the
anonymous misses it found with the view's own call
(``mathsite.front_misses``). The URLconf and the
views behind it are loaded here, when a worker starts, instead of by its
first request: otherwise the first client of every new worker (and of every
respawned one) waits about a second for the imports. The secrets the
settings have read leave the worker's environment here
(``mathsite.environment``: a granian started other than by the project's
server command copies the environment into every request's).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathsite.settings")
django_application = get_wsgi_application()

from compute.http.wsgi import ResultFront  # noqa: E402 - needs Django set up
from mathsite.environment import forget_secrets  # noqa: E402
from mathsite.front_misses import answer_miss  # noqa: E402 - needs Django set up
from mathsite.warmup import warm_up  # noqa: E402 - needs Django set up

warm_up()
forget_secrets()
application = ResultFront(django_application, misses=answer_miss)
