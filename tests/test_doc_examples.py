"""The README's and docs/'s examples are real output: each page's run against ``make run``.

The parser and the comparison (``tests.docs_examples``) are checked on a
page written here; then every page with examples is run against a fresh
``python -m launcher.serve`` (what ``make run`` starts) of its own.
"""

from __future__ import annotations

import pytest

from tests.docs_examples import check_page as check
from tests.docs_examples import examples, matches, pages
from tests.support.servers import ServeRun

PAGE = """\
Some prose.

```console
$ curl -s http://127.0.0.1:8000/api/fib/10/
{"cached":false,"result":55,"n":10}
$ curl -s -X DELETE http://127.0.0.1:8000/api/fib/10/
{"detail":"Authentication credentials were not provided."}      # 401
```

<!-- examples: not run (needs a spent budget) -->
```console
$ curl -s http://127.0.0.1:8000/api/fib/999999/
{"detail":"spent"}
```

```sh
curl http://127.0.0.1:8000/not/a/console/block
```
"""


def test_examples_are_the_curl_lines_of_console_blocks_not_marked(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    found = examples(page)
    assert [(e.line, e.command) for e in found] == [
        (4, "curl -s http://127.0.0.1:8000/api/fib/10/"),
        (6, "curl -s -X DELETE http://127.0.0.1:8000/api/fib/10/"),
    ]
    assert found[1].expected == '{"detail":"Authentication credentials were not provided."}'


def test_what_differs_between_runs_is_compared_by_shape():
    page = '{"n":0,"compute_ms":0.0215,"computed_at":"2026-11-21T06:10:35.396379Z"}'
    run = '{"n":0,"compute_ms":3.5e-05,"computed_at":"2026-12-06T14:01:02.5+00:00"}'
    assert matches(page, run)
    assert not matches(page, run.replace('"n":0', '"n":1'))
    assert matches(
        '{"next":"http://x/?cursor=cD0yMDI2...&page_size=1"}',
        '{"next":"http://x/?cursor=cD0yMDI2LTEy%3D&page_size=1"}',
    )
    assert matches("image/svg+xml ...", "image/svg+xml 5680")
    assert not matches('{"cached":true}', '{"cached":false}')


@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page in pages() if examples(page)], ids=lambda p: p.name)
def test_every_example_of_the_page_is_real_output(page, tmp_path):
    server = ServeRun(tmp_path / "data").start()
    try:
        failures = check(page, server.port, tmp_path)
    finally:
        server.stop()
    assert not failures, "\n".join(failures)
