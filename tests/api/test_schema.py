"""The OpenAPI schema and the interactive docs.

Mirrors ``compute/schema.py``: generation passes drf-spectacular's own
validation with warnings as errors (the same command CI or a developer
runs), names every route and method of the API, states the limits the
service enforces (following the settings), and documents each error body.
The docs pages must work offline: every asset they load is served by this
site.
"""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

ROUTES = {
    "/api/pi/": {"get"},
    "/api/pi/{n}/": {"get", "delete"},
    "/api/fib/": {"get"},
    "/api/fib/{n}/": {"get", "delete"},
    "/pi/{n}": {"get", "delete"},
    "/fib/{n}": {"get", "delete"},
    "/pi": {"get", "delete"},
    "/healthz": {"get"},
    "/readyz": {"get"},
}


def generate() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def parameter(operation: dict, name: str) -> dict:
    (found,) = [p for p in operation["parameters"] if p["name"] == name]
    return found


def test_spectacular_validates_with_warnings_as_errors(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")
    assert {path: set(item) for path, item in schema["paths"].items()} == ROUTES


def test_operation_ids_are_unique_and_tagged():
    operations = [op for item in generate()["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == sum(len(methods) for methods in ROUTES.values())
    assert all(op.get("tags") for op in operations)


def test_limits_follow_the_settings(settings):
    settings.FIB_MAX_N, settings.PI_MAX_N, settings.PI_MAX_DIGITS = 5000, 77, 12
    paths = generate()["paths"]
    fib_n = parameter(paths["/api/fib/{n}/"]["get"], "n")
    assert (fib_n["schema"]["minimum"], fib_n["schema"]["maximum"]) == (0, 5000)
    assert "FIB_MAX_N" in fib_n["description"]
    pi = paths["/api/pi/{n}/"]["get"]
    assert parameter(pi, "n")["schema"]["maximum"] == 77
    assert parameter(pi, "digits")["schema"] == {"type": "integer", "minimum": 1, "maximum": 12}
    seed = parameter(paths["/pi"]["get"], "n")
    assert seed["in"] == "query" and seed["schema"]["default"] == 100
    assert parameter(paths["/api/fib/{n}/"]["get"], "format")["schema"]["enum"] == [
        "number",
        "string",
        "json",
        "",
    ]


def test_every_error_body_is_documented():
    schema = generate()
    paths = schema["paths"]

    def body(operation: dict, status: str) -> str:
        return operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]

    for path in ("/api/pi/{n}/", "/api/fib/{n}/", "/pi/{n}", "/fib/{n}", "/pi"):
        get, delete = paths[path]["get"], paths[path]["delete"]
        assert set(get["responses"]) == {"200", "304", "400", "404", "429", "503"}
        assert body(get, "400").endswith("/InvalidQuery")
        assert body(get, "429").endswith("/Throttled")
        assert body(get, "503").endswith("/Throttled")
        assert "Retry-After" in get["responses"]["429"]["headers"]
        assert "Retry-After" in get["responses"]["503"]["headers"]
        assert "COMPUTE_DIGITS_PER_HOUR" in get["responses"]["429"]["description"]
        assert "ETag" in get["responses"]["200"]["headers"]
        assert set(delete["responses"]) == {"204", "400", "401", "403", "404"}
        assert body(delete, "401").endswith("/Error")
        assert {"tokenAuth": []} in delete["security"] and {} not in delete["security"]
        assert {} in get["security"]  # reads need no credentials
    components = schema["components"]["schemas"]
    assert components["Throttled"]["required"] == ["detail", "retry_after"]
    assert components["FibResult"]["required"] == ["cached", "result", "n"]
    assert body(paths["/api/fib/"]["get"], "200").endswith("/PaginatedResultLogItemList")


def test_schema_endpoint_serves_openapi():
    client = Client()
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "mathsite API"


def test_docs_page_loads_only_local_assets():
    client = Client()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html), "an external asset"
    assets = re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert "/api/schema/" in html
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert b"".join(served.streaming_content), asset


def test_admin_css_is_served_with_debug_off(settings):
    assert settings.DEBUG is False
    response = Client().get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
