"""Kinds of result as data: each kind declared once (``base.Kind``), listed in one registry.

``registry`` holds the kinds of this deployment (the ``RESULT_KINDS``
setting); ``pi`` and ``fib`` are the built-in two.
"""
