"""The hit protocol's header rules: Accept-Encoding as RFC 9110 reads it, If-None-Match,
Cache-Status as RFC 9211 writes it."""

from __future__ import annotations

import gzip
import re

import pytest

from compute.http.hit import accepts_gzip, cache_status, etag_matches
from compute.services import Source


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip", True),
        ("gzip;q=0.5", True),
        ("gzip; q=1.0", True),
        ("x-gzip", True),
        ("*", True),
        ("br, *;q=0.1", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip; Q=0.000", False),
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # gzip named: its own weight decides
        ("gzip;q=bogus", False),
        ("deflate, br", False),
        ("gzipped", False),
    ],
)
def test_accept_encoding_is_read_as_the_rfc_says(value, accepted):
    assert accepts_gzip(value) is accepted


def test_weak_etags_match_and_star_matches_everything():
    assert etag_matches('W/"fib-7-v1"', 'W/"fib-7-v1"')
    assert etag_matches('"fib-7-v1"', 'W/"fib-7-v1"')
    assert etag_matches('W/"a", W/"fib-7-v1"', 'W/"fib-7-v1"')
    assert etag_matches("*", 'W/"fib-7-v1"')
    assert not etag_matches('W/"fib-8-v1"', 'W/"fib-7-v1"')
    assert not etag_matches(None, 'W/"fib-7-v1"')


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["gzip;q=0", "identity", "GZIP;q=0"])
def test_a_refusal_of_gzip_gets_an_uncompressed_body(client, value):
    response = client.get("/api/pi/100/", {"digits": "400"}, HTTP_ACCEPT_ENCODING=value)
    assert response.status_code == 200 and not response.has_header("Content-Encoding")
    assert response.json()["digits"] == 400
    assert int(response["Content-Length"]) == len(response.content)


@pytest.mark.django_db
def test_gzip_in_capitals_is_accepted(client):
    response = client.get("/api/pi/100/", {"digits": "400"}, HTTP_ACCEPT_ENCODING="GZIP")
    assert response["Content-Encoding"] == "gzip"
    assert b'"digits":400' in gzip.decompress(response.content)


# RFC 9211 over RFC 8941: a list member is a token with parameters (";" key["=" token]).
_TOKEN = r"[A-Za-z*][A-Za-z0-9!#$%&'*+.^_`|~:/-]*"
_MEMBER = re.compile(rf"({_TOKEN})((?:; ?[a-z][a-z0-9_.*-]*(?:={_TOKEN})?)*)")


@pytest.mark.parametrize("source", list(Source))
def test_cache_status_is_one_rfc_9211_member_per_source(source):
    name, value = cache_status(source)
    assert name == "Cache-Status"
    member = _MEMBER.fullmatch(value)
    assert member is not None and member.group(1) == "mathsite"
    params = dict(p.strip().partition("=")[::2] for p in member.group(2).split(";")[1:])
    # A hit, or forwarded to the computation (this request's or, collapsed, another's).
    forwarded = source in (Source.COLLAPSED, Source.COMPUTED, Source.COMPUTED_UNSTORED)
    assert ("hit" in params) is not forwarded
    assert params.get("fwd") == ("miss" if forwarded else None)
    assert ("detail" in params) is not forwarded
    assert ("stored" in params) is (source is Source.COMPUTED)
    assert ("collapsed" in params) is (source is Source.COLLAPSED)
    assert cache_status(source) is cache_status(source)  # prebuilt, not made per hit
