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

from compute.api.schema import SchemaView

pytestmark = pytest.mark.django_db

ROUTES = {
    "/api/pi/": {"get"},
    "/api/pi/{n}/": {"get", "delete"},
    "/api/fib/": {"get"},
    "/api/fib/{n}/": {"get", "delete"},
    "/api/pi/{n}/convergence/": {"get"},
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
        assert "Cache-Status" in get["responses"]["200"]["headers"]
        assert "Cache-Status" not in get["responses"]["304"].get("headers", {})
        assert set(delete["responses"]) == {"204", "400", "401", "403", "404"}
        assert body(delete, "401").endswith("/Error")
        assert {"tokenAuth": []} in delete["security"] and {} not in delete["security"]
        assert get["security"] == []  # reads need no credentials: no padlock
    components = schema["components"]["schemas"]
    assert components["Throttled"]["required"] == ["detail", "retry_after"]
    assert components["FibResult"]["required"] == ["cached", "result", "n"]
    assert body(paths["/api/fib/"]["get"], "200").endswith("/PaginatedFibLogItemList")
    assert body(paths["/api/pi/"]["get"], "200").endswith("/PaginatedResultLogItemList")


def test_schema_endpoint_serves_openapi():
    client = Client()
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "mathsite API"


def test_the_endpoint_builds_the_document_once_and_again_when_a_setting_changes(
    settings, monkeypatch
):
    built = []
    get_schema = SchemaGenerator.get_schema

    def counted(generator: SchemaGenerator, *args, **kwargs) -> dict:
        built.append(kwargs.get("request"))
        return get_schema(generator, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counted)
    SchemaView.document.forget()  # whatever an earlier test left
    client = Client()
    as_json = {"HTTP_ACCEPT": "application/vnd.oai.openapi+json"}
    first = client.get("/api/schema/", **as_json)
    again = [
        client.get("/api/schema/", **as_json),
        client.get("/api/schema/?lang=de&version=2", **as_json),
        client.get("/api/schema/"),  # YAML: the same document, rendered otherwise
    ]
    assert [r.status_code for r in (first, *again)] == [200] * 4
    assert again[0].content == again[1].content == first.content
    assert yaml.safe_load(again[2].content) == first.json()
    assert built == [None]  # once, and with no request: nothing of a client's in it

    settings.FIB_MAX_N = 5000  # override_settings: the next request builds anew
    changed = client.get("/api/schema/", **as_json).json()
    fib_n = parameter(changed["paths"]["/api/fib/{n}/"]["get"], "n")
    assert fib_n["schema"]["maximum"] == 5000
    assert built == [None, None]
    client.get("/api/schema/", **as_json)
    assert len(built) == 2


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


@pytest.mark.parametrize(
    "version",
    ["a%22%3B%20x", "%00", "%0d%0aSet-Cookie:%20x=1", "%ff%fe", "1", "x" * 3000],
)
@pytest.mark.parametrize("accept", ["application/vnd.oai.openapi", "application/json"])
def test_version_parameter_never_reaches_a_header(version, accept):
    """?version= is the client's text: it is ignored, never a 500, never in a header."""
    response = Client().get(f"/api/schema/?version={version}", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    suffix = "json" if accept == "application/json" else "yaml"
    assert response["Content-Disposition"] == f'inline; filename="mathsite API.{suffix}"'
    for name, value in response.items():
        assert value.isprintable() and value.isascii(), (name, value)
    assert "Set-Cookie" not in response
    document = response.json() if suffix == "json" else yaml.safe_load(response.content)
    assert document["info"]["version"] == "1"


def test_mod_is_documented_with_the_limits_the_service_enforces(settings):
    settings.FIB_MOD_MAX_N, settings.FIB_MOD_MAX_M = 123456, 789
    schema = generate()
    for path in ("/api/fib/{n}/", "/fib/{n}"):
        for method in ("get", "delete"):
            mod = parameter(schema["paths"][path][method], "mod")
            assert mod["in"] == "query" and not mod.get("required")
            assert (mod["schema"]["minimum"], mod["schema"]["maximum"]) == (1, 789)
            assert "FIB_MOD_MAX_M" in mod["description"] and "123456" in mod["description"]
        n = parameter(schema["paths"][path]["get"], "n")
        assert "with mod=M, 0 <= n <= 123456 (FIB_MOD_MAX_N)" in n["description"]
    get = schema["paths"]["/api/fib/{n}/"]["get"]
    assert 'W/"fib-10-m10-v1"' in parameter(get, "mod")["description"]
    for path in ("/api/pi/{n}/", "/pi/{n}", "/pi"):
        names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert "mod" not in names
    fib = schema["components"]["schemas"]["FibResult"]
    assert fib["properties"]["mod"]["minimum"] == 1
    assert "mod" in schema["components"]["schemas"]["InvalidQuery"]["properties"]
    item = schema["components"]["schemas"]["FibLogItem"]["properties"]
    assert item["mod"]["nullable"] is True


# --- the schema's words against the code ---------------------------------------------------


def test_the_gzip_threshold_is_the_codes():
    from compute.domain.payload import GZIP_MIN_BYTES

    get = generate()["paths"]["/api/fib/{n}/"]["get"]
    assert f"of {GZIP_MIN_BYTES} bytes or more are gzip-compressed" in get["description"]
    assert "KiB" not in yaml.safe_dump(generate())


@pytest.mark.parametrize(
    ("path", "etag"), [("/api/pi/{n}/", 'W/"pi-1000-v1"'), ("/api/fib/{n}/", 'W/"fib-1000-v1"')]
)
def test_each_kind_shows_its_own_etag(path, etag):
    from compute.domain.query import ResultQuery

    header = generate()["paths"][path]["get"]["responses"]["200"]["headers"]["ETag"]
    assert etag in header["description"]
    kind = path.split("/")[2]
    assert ResultQuery(kind, 1000).etag == etag  # the code sends that very tag


def test_the_format_enum_is_what_the_code_accepts():
    from compute.domain.query import InvalidQuery, Limits, parse_query

    enum = parameter(generate()["paths"]["/api/fib/{n}/"]["get"], "format")["schema"]["enum"]
    limits = Limits(10, 10, 10, 10, 10)
    for value in enum:
        parse_query("fib", "5", format_text=value, limits=limits)  # accepted
    for value in ("xml", "STRING", "str"):
        with pytest.raises(InvalidQuery):
            parse_query("fib", "5", format_text=value, limits=limits)


def test_page_links_are_real_links_of_this_api():
    from urllib.parse import urlsplit

    from django.urls import resolve

    text = yaml.safe_dump(generate())
    assert "example.org" not in text
    page = generate()["components"]["schemas"]["PaginatedResultLogItemList"]["properties"]
    for link in (page["next"]["example"], page["previous"]["example"]):
        parts = urlsplit(link)
        assert resolve(parts.path).url_name == "fib-list"
        assert Client().get(f"{parts.path}?{parts.query}").status_code == 200  # a valid cursor


def test_public_reads_have_no_padlock_and_deletes_need_staff_credentials():
    for path, item in generate()["paths"].items():
        for method, operation in item.items():
            if method == "get":
                assert operation.get("security") == [], path
            if method == "delete":
                assert operation["security"], path
                assert {} not in operation["security"], path


def test_no_team_jargon_and_the_javascript_case_is_explained():
    schema = generate()
    assert "seed" not in yaml.safe_dump(schema).lower()
    result = schema["components"]["schemas"]["FibResult"]["properties"]["result"]["oneOf"][0]
    assert "fib(79)" in result["description"] and "format=string" in result["description"]
    assert any(tag["name"] == "old service routes" for tag in schema["tags"])


def test_the_convergence_picture_is_described_as_svg():
    get = generate()["paths"]["/api/pi/{n}/convergence/"]["get"]
    assert "image/svg+xml" in get["responses"]["200"]["content"]
    assert 'W/"pi-convergence-1000-v1"' in get["description"]
    assert get["security"] == []


def test_cache_status_is_described_with_the_values_the_code_sends():
    from compute.http.hit import cache_status
    from compute.services import PICTURE_SOURCES, Source

    paths = generate()["paths"]
    result = paths["/api/fib/{n}/"]["get"]["responses"]["200"]["headers"]["Cache-Status"]
    picture = paths["/api/pi/{n}/convergence/"]["get"]["responses"]["200"]["headers"]
    for source in Source:
        value = cache_status(source)[1]
        assert f"`{value}`" in result["description"]
        assert (f"`{value}`" in picture["Cache-Status"]["description"]) is (
            source in PICTURE_SOURCES
        )
    assert "`mathsite; hit; detail=log`" in result["description"]


@pytest.mark.parametrize("method", ["options", "post", "delete"])
def test_the_docs_page_answers_other_methods_with_a_json_405(method):
    response = getattr(Client(), method)("/api/docs/")
    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert response["Allow"] == "GET, HEAD"
