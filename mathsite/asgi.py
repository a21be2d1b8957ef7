"""ASGI entry point, for ASGI servers (uvicorn mathsite.asgi:application)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathsite.settings")
application = get_asgi_application()
