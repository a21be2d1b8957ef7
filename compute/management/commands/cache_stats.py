"""``manage.py cache_stats [--json]``: what this deployment's cache holds and how well it serves.

Shows the namespace's result entries (by kind) and their stored size
(exact on a small Redis database; on a large one estimated from a bounded
random sample, marked "~" with a 95% margin, so the command costs the
same with a million entries as with ten), the
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
    """Return ``ResultCache.stats()`` as a few readable lines; estimates are marked "~"."""
    estimated = bool(stats["estimated"])
    about = "~" if estimated else ""
    kinds = ", ".join(
        f"{kind} {about}{count:,}" for kind, count in stats["entries_by_kind"].items()
    )
    margin = f" +/- {stats['entries_margin']:,}" if estimated else ""
    ratio = stats["hit_ratio"]
    ratio_text = "n/a" if ratio is None else f"{ratio:.1%}"
    cap = stats["maxmemory"]
    cap_text = "no cap" if not cap else f"cap {cap / 2**20:,.0f} MiB"
    return "\n".join(
        [
            f"Namespace:  {stats['namespace']}",
            f"Figures:    {stats['method']}" + ("; ~ marks an estimate" if estimated else ""),
            f"Entries:    {about}{stats['entries']:,}{margin}" + (f" ({kinds})" if kinds else ""),
            f"Stored:     {about}{stats['stored_bytes']:,} bytes in result entries "
            f"({about}{stats['memory_bytes']:,} bytes of Redis memory)",
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
