"""A request's environ holds no variable of the server's process (``request_environ``).

granian's own WSGI wrapper copies the worker's ``os.environ`` into every
request's environ; the project's server command removes that copy and keeps
the keys WSGI defines. Checked on granian's wrapper in process (both its
variants: with and without an access log; granian's own wrapper, the
control, does carry the variable) and on a live server started by the
project's command (``launcher.server.command``, through ``bench.servers.Granian``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from granian import wsgi as granian_wsgi

from bench import servers
from launcher.shared_listener import request_environ
from tests.support.granian_protocol import Protocol
from tests.support.servers import http_get

CANARY = "MATHSITE_TEST_ENVIRON_CANARY"
# What granian's WSGI wrapper itself puts in every environ (PEP 3333's keys).
WSGI_KEYS = {"GATEWAY_INTERFACE", "SCRIPT_NAME", "SERVER_SOFTWARE", "wsgi.version", "wsgi.errors"}
REQUEST = {
    "PATH_INFO": "/x", "REQUEST_METHOD": "GET", "QUERY_STRING": "", "HTTP_HOST": "h",
    "REMOTE_ADDR": "127.0.0.1:1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
}  # fmt: skip


def environ_seen(wrap, log_format: str | None) -> dict:
    seen: dict = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    wrapper = wrap(app, {}, log_format)
    wrapper(Protocol(), dict(REQUEST))
    return seen


@pytest.mark.parametrize("log_format", [None, "%(status)d"], ids=["plain", "access-log"])
def test_the_wrapper_leaves_the_process_environment_out(monkeypatch, log_format):
    monkeypatch.setenv(CANARY, "1")
    own = environ_seen(granian_wsgi._callback_wrapper, log_format)
    assert own[CANARY] == "1" and "PATH" in own  # granian's own wrapper copies os.environ

    seen = environ_seen(request_environ.wrap_without_environment, log_format)
    assert CANARY not in seen and "PATH" not in seen
    from_process = set(os.environ) - WSGI_KEYS - set(REQUEST)
    assert from_process and not from_process & set(seen)
    assert set(seen) >= WSGI_KEYS
    assert {k: seen[k] for k in REQUEST} == REQUEST
    assert os.environ[CANARY] == "1"  # the process keeps its environment


def test_install_replaces_granians_wrapper_in_its_multiprocess_server(monkeypatch):
    from granian.server import mp

    monkeypatch.setattr(mp, "_wsgi_call_wrap", mp._wsgi_call_wrap)
    request_environ.install()
    assert mp._wsgi_call_wrap is request_environ.wrap_without_environment


def test_a_wrapper_without_a_base_environ_is_refused():
    def runner(proto, scope):
        return 200

    with pytest.raises(LookupError):
        request_environ.base_environ(runner)


@pytest.fixture
def live_environ_app(tmp_path) -> Iterator[int]:
    env = dict(os.environ, **{CANARY: "1"})
    app = "tests.support.environ_app:app"
    with servers.Granian("environ", app, env=env, log=tmp_path / "granian.log", workers=1) as web:
        yield web.port


def test_the_servers_requests_carry_no_process_variable(live_environ_app):
    names = set(http_get(live_environ_app, "/x?a=1").data)
    assert CANARY not in names and "PATH" not in names and "GRANIAN_PORT" not in names
    assert WSGI_KEYS | {"PATH_INFO", "QUERY_STRING", "HTTP_HOST", "REMOTE_ADDR"} <= names
