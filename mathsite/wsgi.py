"""WSGI entry point (gunicorn mathsite.wsgi:application).

Django's application, wrapped by the fast path that answers cached hits
without Django's request cycle (``compute.http.wsgi``).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathsite.settings")
django_application = get_wsgi_application()

from compute.http.wsgi import ResultFront  # noqa: E402 - needs Django set up

application = ResultFront(django_application)
