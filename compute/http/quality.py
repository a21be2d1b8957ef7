"""The weight of one item of an HTTP list header (RFC 9110, section 12.4.2).

``Accept`` and ``Accept-Encoding`` share the ``;q=`` syntax: the gzip
decision of the hit protocol and the front page's choice of HTML read it
here, the same way.

    >>> quality(""), quality(" q=0.5"), quality("level=1; Q=0"), quality("q=x")
    (1.0, 0.5, 0.0, 0.0)
"""

from __future__ import annotations


def quality(params: str) -> float:
    """Return the ``q`` weight among an item's ``;``-separated ``params`` (1.0 when absent).

    A malformed weight counts as 0: it accepts nothing.
    """
    weight = 1.0
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                weight = 0.0
    return weight
