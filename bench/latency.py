"""Cold and cached latency of single results against a running mathsite (issue 2's figures).

Each cold sample deletes the result first (staff token) so the next GET
computes it; each is followed by cached hits on fresh connections.
Medians over the samples. Usage, against ``make run``::

    make manage CMD="drf_create_token <staff user>"        # once, prints TOKEN
    .venv/bin/python -m bench.latency --token TOKEN [--port 8000] [--samples 7]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import time

PATHS = ("/api/fib/1000000/", "/api/pi/1000000000/")


def request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, float]:
    """Return (status, body, milliseconds) of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    connection.close()
    return response.status, body, elapsed


def measure(port: int, token: str, path: str, encoding: str, samples: int, hits: int) -> dict:
    """Return median cold and cached latencies (ms) and the body size for one path."""
    cold, cached, size = [], [], 0
    headers = {"Accept-Encoding": encoding} if encoding else {}
    for _ in range(samples):
        status, _, _ = request(port, "DELETE", path, {"Authorization": f"Token {token}"})
        if status != 204:
            raise SystemExit(f"DELETE {path} answered {status}: is the token a staff user's?")
        status, body, elapsed = request(port, "GET", path, headers)
        if status != 200 or (not encoding and not body.startswith(b'{"cached":false,')):
            raise SystemExit(f"GET {path} did not compute (status {status})")
        cold.append(elapsed)
        for _ in range(hits):
            _, body, elapsed = request(port, "GET", path, headers)
            cached.append(elapsed)
        size = len(body)
    return {
        "path": path,
        "encoding": encoding or "identity",
        "bytes": size,
        "cold_ms": statistics.median(cold),
        "cached_ms": statistics.median(cached),
        "cached_p90_ms": sorted(cached)[int(len(cached) * 0.9)],
    }


def main() -> None:
    """Print one line per path and encoding."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", required=True, help="a staff user's API token")
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--hits", type=int, default=10)
    args = parser.parse_args()
    for path in PATHS:
        for encoding in ("", "gzip"):
            row = measure(args.port, args.token, path, encoding, args.samples, args.hits)
            print(
                f"{row['path']} {row['encoding']}: {row['bytes']} bytes, cold median "
                f"{row['cold_ms']:.2f} ms, cached median {row['cached_ms']:.2f} ms "
                f"(p90 {row['cached_p90_ms']:.2f})"
            )


if __name__ == "__main__":
    main()
