"""The serializer django-redis uses for mathsite's cache: bytes or JSON, never pickle.

A shared Redis must not be a path to code execution, so nothing read back
is unpickled. Result payloads are already bytes (see ``compute.domain.payload``)
and are stored behind a one-byte tag; anything else the framework caches
(throttle counters are plain integers that django-redis stores raw) goes
through JSON.

    >>> s = TaggedSerializer({})
    >>> s.loads(s.dumps(b"abc")), s.loads(s.dumps({"a": 1}))
    (b'abc', {'a': 1})
"""

from __future__ import annotations

from typing import Any

import orjson

_BYTES = b"b"
_JSON = b"j"


class TaggedSerializer:
    """Serialize bytes as themselves and everything else as JSON."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def dumps(self, value: Any) -> bytes:
        """Return the stored form of ``value``: tag byte + bytes or JSON."""
        if isinstance(value, bytes | bytearray | memoryview):
            return _BYTES + bytes(value)
        return _JSON + orjson.dumps(value)

    def loads(self, value: bytes) -> Any:
        """Return the value stored by ``dumps``; raise ValueError for anything else."""
        tag, body = value[:1], value[1:]
        if tag == _BYTES:
            return body
        if tag == _JSON:
            return orjson.loads(body)
        raise ValueError("cache value was not written by TaggedSerializer")
