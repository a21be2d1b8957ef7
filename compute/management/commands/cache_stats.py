"""``manage.py cache_stats [--json]``: what this deployment's cache holds and how well it serves.

Shows the namespace's result entries (by kind) and their stored size, the
hit ratio since the namespace's counters started (hits: lookups a cache
tier answered; fills: entries stored after a miss, from the log or a
computation; each server process adds its counts at most once a second),
and the Redis server's memory use, cap and eviction policy.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compute.cache import REDIS_ERRORS, result_cache


def _since(timestamp: int | None) -> str:
    if timestamp is None:
        return "no lookups counted yet"
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return f"since {moment:%Y-%m-%d %H:%M:%S} UTC"


def format_stats(stats: dict[str, Any]) -> str:
    """Return ``ResultCache.stats()`` as a few readable lines."""
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in stats["entries_by_kind"].items())
    ratio = stats["hit_ratio"]
    ratio_text = "n/a" if ratio is None else f"{ratio:.1%}"
    cap = stats["maxmemory"]
    cap_text = "no cap" if not cap else f"cap {cap / 2**20:,.0f} MiB"
    return "\n".join(
        [
            f"Namespace:  {stats['namespace']}",
            f"Entries:    {stats['entries']:,}" + (f" ({kinds})" if kinds else ""),
            f"Stored:     {stats['stored_bytes']:,} bytes in result entries",
            f"Hit ratio:  {ratio_text} ({stats['hits']:,} hits, {stats['fills']:,} fills, "
            f"{_since(stats['since'])})",
            f"Redis:      {stats['used_memory_human']} used, {cap_text}, "
            f"policy {stats['maxmemory_policy']}, {stats['evicted_keys']:,} keys evicted",
        ]
    )


class Command(BaseCommand):
    help = "Show this deployment's cache entries, memory and hit ratio."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            stats = result_cache.stats()
        except REDIS_ERRORS as exc:
            raise CommandError(f"Redis is unreachable ({type(exc).__name__}: {exc}).") from exc
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True))
        else:
            self.stdout.write(format_stats(stats))
