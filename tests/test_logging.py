"""Structured logs: one access line per request, request ids on every record.

Mirrors ``mathsite/logging.py``. Records are captured as the request
middleware emits them (pytest's ``caplog``) and formatted with the
project's formatters, so the assertions are on the exact text a log
collector would receive.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest
from django.test import Client

from mathsite.logging import (
    CLIENT_FAULT_CHARS,
    JsonFormatter,
    PlainFormatter,
    RequestContextFilter,
    current_request_id,
)

pytestmark = pytest.mark.django_db


def access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mathsite.request"]


def test_one_json_access_line_per_request_with_route_status_duration_and_cache(caplog):
    caplog.set_level(logging.INFO, logger="mathsite.request")
    client = Client()
    client.get("/api/fib/15/")
    client.get("/fib/15")
    client.get("/api/fib/nope/")
    lines = [json.loads(JsonFormatter().format(r)) for r in access_records(caplog)]
    assert [(line["route"], line["status"], line.get("cache")) for line in lines] == [
        ("fib-detail", 200, "computed"),
        ("seed-fib", 200, "hit"),
        ("fib-detail", 400, None),
    ]
    first = lines[0]
    assert first["logger"] == "mathsite.request" and first["level"] == "INFO"
    assert first["method"] == "GET" and first["path"] == "/api/fib/15/"
    assert first["message"].startswith("GET /api/fib/15/ 200 ")
    assert 0 < first["duration_ms"] < 10_000
    assert first["client"] == "127.0.0.1"
    assert first["time"].endswith("+00:00")
    ids = [line["request_id"] for line in lines]
    assert len(set(ids)) == 3 and all(ids)


def test_a_proxy_request_id_is_kept_and_a_forged_one_is_replaced(caplog):
    caplog.set_level(logging.INFO, logger="mathsite.request")
    client = Client()
    client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a.1")
    client.get("/healthz", HTTP_X_REQUEST_ID='bad" id\n{"level": "ERROR"}')
    kept, replaced = (r.request_id for r in access_records(caplog))
    assert kept == "lb-7f3a.1"
    assert replaced != kept and '"' not in replaced and "\n" not in replaced


def test_records_logged_during_a_request_carry_its_id(caplog, settings):
    # A Redis outage is logged by the cache while a request is being served.
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    caplog.set_level(logging.INFO)
    Client().get("/api/pi/40/", HTTP_X_REQUEST_ID="trace-42")
    # The configured console handler's filter stamped the id as the record
    # passed through it, while the request was running.
    outage = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert outage and outage[0].request_id == "trace-42"
    line = json.loads(JsonFormatter().format(outage[0]))
    assert line["level"] == "WARNING" and line["request_id"] == "trace-42"
    assert current_request_id() is None  # forgotten once the request ended
    outside = logging.makeLogRecord({"msg": "no request"})
    RequestContextFilter().filter(outside)
    assert outside.request_id is None


def test_plain_format_is_readable_and_exceptions_are_kept():
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "INFO", "msg": "GET /pi 200", "request_id": "abc-1"}
    )
    assert PlainFormatter().format(record).endswith("INFO x: GET /pi 200 [abc-1]")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    line = json.loads(JsonFormatter().format(failed))
    assert "ValueError: boom" in line["exc_info"]


@pytest.mark.parametrize(
    ("host", "query", "logger"),
    [
        ("evil.example" + "x" * 20_000, "n=1", "django.security.DisallowedHost"),
        ("testserver", "&".join(f"p{i}=1" for i in range(3000)), "django.security.TooManyFields"),
    ],
)
def test_a_clients_bad_request_is_one_short_warning_line(caplog, host, query, logger):
    """Django logs these at ERROR with a traceback and the whole request (its query string,
    the client's Host): a client repeating them must not write kilobytes of log each."""
    caplog.set_level(logging.INFO)
    response = Client().get("/api/fib/10/", QUERY_STRING=query, HTTP_HOST=host)
    assert response.status_code == 400
    records = [r for r in caplog.records if r.name.startswith(logger)]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING" and "exc_info" not in parsed
    assert len(parsed["message"]) <= CLIENT_FAULT_CHARS
    assert parsed["request"].startswith("GET /api/fib/10/")
    assert len(parsed["request"]) <= CLIENT_FAULT_CHARS
    assert len(line) < 3 * CLIENT_FAULT_CHARS
    access = [r for r in access_records(caplog) if r.status == 400]
    assert len(access) == 1  # the access line still records the request
