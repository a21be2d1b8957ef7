"""Kept answers sent by the server's request wrapper (``launcher.shared_listener.kept_hits``).

In process, on granian's own wrapper (the Rust side's protocol object,
which Python cannot make, recorded by a stand-in with its one method), and
on a live server started by the project's command
(``launcher.server.command``, through ``bench.servers.Granian``), whose
workers must send what the application's ``kept_reply`` returns and hand
everything else to its ``__call__``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from granian import wsgi as granian_wsgi
from granian.server import mp

from bench import servers
from launcher.shared_listener import kept_hits, request_environ
from tests.support import kept_app
from tests.support.granian_protocol import Protocol
from tests.support.servers import http_get

REQUEST = {
    "PATH_INFO": "/kept", "REQUEST_METHOD": "GET", "QUERY_STRING": "", "HTTP_HOST": "h",
    "REMOTE_ADDR": "127.0.0.1:1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
    "HTTP_ACCEPT_ENCODING": "identity",
}  # fmt: skip


class Asking(kept_app.App):
    """The test app, recording what the wrapper asks it and how often it is called."""

    def __init__(self) -> None:
        self.asked: list[dict] = []
        self.called: list[dict] = []

    def kept_reply(self, request):
        self.asked.append(dict(request))
        return super().kept_reply(request)

    def __call__(self, environ, start_response):
        self.called.append(environ)
        return super().__call__(environ, start_response)


def run(app, request: dict, scope_opts: dict | None = None, log_format: str | None = None):
    opts = scope_opts or {}
    wrapper = granian_wsgi._callback_wrapper(app, opts, log_format)
    runner = kept_hits.with_kept_hits(wrapper, app, opts, log_format)
    proto = Protocol()
    status = runner(proto, dict(request))
    return runner, wrapper, status, proto.sent


def test_a_kept_answer_is_sent_as_it_is_and_the_application_is_not_called():
    app = Asking()
    _runner, _wrapper, status, sent = run(app, REQUEST)
    kept = kept_app.KEPT
    assert status == kept.status and sent == [(kept.status, kept.headers, kept.content)]
    assert app.asked == [REQUEST]  # the request's own keys: no environ was built
    assert app.called == []


@pytest.mark.parametrize("request_", [
    {**REQUEST, "PATH_INFO": "/other"}, {**REQUEST, "REQUEST_METHOD": "POST"},
], ids=["no-kept-answer", "another-method"])  # fmt: skip
def test_without_a_kept_answer_granians_wrapper_calls_the_application(request_):
    app = Asking()
    _runner, _wrapper, status, sent = run(app, request_)
    assert status == 200 and sent == [(200, [("Content-Type", "text/plain"), ("X-Way", "call")],
                                       kept_app.CALLED_BODY)]  # fmt: skip
    assert len(app.asked) == 1 and len(app.called) == 1
    assert app.called[0]["SERVER_SOFTWARE"] == "Granian"  # granian's own environ


@pytest.mark.parametrize(("scope_opts", "log_format"), [
    ({}, "%(status)d"), ({"url_path_prefix": "/prefix"}, None),
], ids=["access-log", "url-prefix"])  # fmt: skip
def test_not_used_where_it_would_skip_the_access_log_or_misread_the_path(scope_opts, log_format):
    app = Asking()
    runner, wrapper, _status, _sent = run(app, REQUEST, scope_opts, log_format)
    assert runner is wrapper and app.asked == []


def test_an_application_without_kept_answers_keeps_granians_wrapper():
    def plain(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    wrapper = granian_wsgi._callback_wrapper(plain, {}, None)
    assert kept_hits.with_kept_hits(wrapper, plain, {}, None) is wrapper


def test_install_adds_kept_answers_to_the_wrapper_already_installed(monkeypatch):
    monkeypatch.setattr(mp, "_wsgi_call_wrap", mp._wsgi_call_wrap)
    monkeypatch.setenv("MATHSITE_TEST_KEPT_CANARY", "1")
    request_environ.install()
    kept_hits.install()
    app = Asking()
    runner = mp._wsgi_call_wrap(app, {}, None)
    proto = Protocol()
    assert runner(proto, dict(REQUEST)) == kept_app.KEPT.status and app.called == []
    runner(proto, {**REQUEST, "PATH_INFO": "/other"})
    assert "MATHSITE_TEST_KEPT_CANARY" not in app.called[0]  # request_environ's trim still on


@pytest.fixture
def live_kept_app(tmp_path) -> Iterator[int]:
    app = "tests.support.kept_app:app"
    with servers.Granian("kept", app, env=dict(os.environ), log=tmp_path / "granian.log",
                         workers=1) as web:  # fmt: skip
        yield web.port


def test_the_servers_workers_send_kept_answers_themselves(live_kept_app):
    """Also shows that granian's request keys hold what the front reads (``kept_app.READ``)."""
    kept = http_get(live_kept_app, "/kept")
    assert kept.status == kept_app.KEPT.status and kept.body == kept_app.KEPT_BODY
    assert kept.headers["x-way"] == "kept" and kept.headers["content-length"] == str(
        len(kept_app.KEPT_BODY)
    )
    other = http_get(live_kept_app, "/other")
    assert other.status == 200 and other.body == kept_app.CALLED_BODY
    assert other.headers["x-way"] == "call"
