"""The processes around the Django project: what starts, supervises and serves it.

``serve`` is ``make run`` (set up, then the embedded Redis and granian
under one supervisor), ``server`` the granian command every deployment
uses, ``embedded_redis`` and ``redis_supervisor`` the Redis-compatible
server the project starts itself when nothing is configured, ``lifetime``
children that die with their parent, ``gunicorn_logger`` gunicorn's logger
for the alternative server. The project (``mathsite``) and the app
(``compute``) never import this package (``pyproject.toml``'s import
contracts check it); it imports ``mathsite.paths`` for the data folder.
"""
