"""WSGI entry point (gunicorn mathsite.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathsite.settings")
application = get_wsgi_application()
