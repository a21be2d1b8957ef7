"""A password hasher that counts its work, for tests that measure what a login attempt costs.

Named in ``PASSWORD_HASHERS`` (Django's own seam), it hashes as the cheap
MD5 hasher does and records one entry per hash computed: checking a
password and the dummy hash Django computes for an unknown username both
go through ``encode``.

    settings.PASSWORD_HASHERS = ["tests.support.hashers.CountingHasher"]
    CountingHasher.hashes.clear(); ...; len(CountingHasher.hashes)
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingHasher(MD5PasswordHasher):
    """MD5 hashing (fast, for tests only) that appends to ``hashes`` on every hash."""

    hashes: ClassVar[list[str]] = []

    def encode(self, password: str, salt: str) -> str:
        self.hashes.append(salt)
        return super().encode(password, salt)
