"""``GET /api/pi/{n}/convergence/``: the SVG, its validation, ETag, 304 and Redis cache."""

from __future__ import annotations

import gzip
import re

import pytest
from rest_framework.test import APIClient

from compute.cache import result_cache
from compute.domain.convergence import convergence_cache_key
from compute.models import ComputedResult
from tests.support.junk import WRONG_TYPES, plant

pytestmark = pytest.mark.django_db

BAD_N = ["0", "-1", "1.5", "1e3", "+3", "%20%203", "\u0663", "1000000000000000001", "9" * 30]


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def test_the_picture_is_svg_with_an_etag(client):
    response = client.get("/api/pi/1000/convergence/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["ETag"] == 'W/"pi-convergence-1000-v1"'
    assert "script-src" not in response["Content-Security-Policy"]  # nothing may run
    body = response.content.decode()
    assert body.startswith("<?xml") and "<svg" in body and body.rstrip().endswith("</svg>")
    assert len(re.findall(r'<path class="line"', body)) == 2  # the curve and the asymptote


@pytest.mark.parametrize("n", BAD_N)
def test_n_is_refused_exactly_as_for_pi(client, n):
    picture = client.get(f"/api/pi/{n}/convergence/")
    result = client.get(f"/api/pi/{n}/")
    assert picture.status_code == result.status_code == 400
    assert picture.json() == result.json()
    assert picture["Content-Type"] == "application/json"


def test_if_none_match_is_a_304_before_any_lookup(client, redis_client):
    response = client.get(
        "/api/pi/1000/convergence/", HTTP_IF_NONE_MATCH='W/"pi-convergence-1000-v1"'
    )
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == 'W/"pi-convergence-1000-v1"'
    assert "Cache-Status" not in response  # nothing was looked up
    assert not list(redis_client.scan_iter(match=result_cache.make_key("pi:1000:*")))


def test_the_picture_is_cached_in_redis_and_not_logged(client, redis_client):
    first = client.get("/api/pi/5000/convergence/")
    key = result_cache.make_key("pi:5000:convergence-v1:fmt2")
    assert redis_client.exists(key)
    assert not ComputedResult.objects.exists()
    second = client.get("/api/pi/5000/convergence/")
    assert second.content == first.content
    assert first["Cache-Status"] == "mathsite; fwd=miss; stored"  # RFC 9211
    assert second["Cache-Status"] == "mathsite; hit; detail=redis"  # pictures: Redis only


def test_a_planted_entry_is_discarded_and_the_picture_drawn_again(client, redis_client):
    honest = client.get("/api/pi/64/convergence/").content
    key = result_cache.make_key("pi:64:convergence-v1:fmt2")
    redis_client.set(key, b"<svg><script>alert(1)</script></svg>")
    again = client.get("/api/pi/64/convergence/")
    assert again.status_code == 200
    assert again.content == honest
    assert b"<script" not in again.content


@pytest.mark.parametrize("junk", WRONG_TYPES)
def test_a_picture_key_of_another_type_is_discarded_and_the_picture_drawn_again(
    client, redis_client, junk
):
    honest = client.get("/api/pi/65/convergence/").content
    key = result_cache.make_key(convergence_cache_key(65))
    plant(redis_client, key, junk)
    again = client.get("/api/pi/65/convergence/")
    assert again.status_code == 200 and again.content == honest
    assert result_cache.available  # GET of a list is no outage
    assert redis_client.type(key) == b"string"  # replaced by the picture drawn again


def test_n_1_is_a_single_point(client):
    body = client.get("/api/pi/1/convergence/").content.decode()
    assert body.count('class="point"') == 1 and 'class="line"' not in body


def test_the_largest_n_is_drawn(client):
    response = client.get("/api/pi/1000000000000000000/convergence/")
    assert response.status_code == 200
    assert "9.55e-19" in response.content.decode()  # pi - pi(10**18) = 3/(pi 10**18)


def test_gzip_for_clients_that_accept_it(client):
    response = client.get("/api/pi/100000/convergence/", HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content).startswith(b"<?xml")
