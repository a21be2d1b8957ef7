"""Fixtures for the browser tests: a real headless Chromium driven by Selenium.

These tests run only with ``make test-e2e`` (the default ``pytest`` run
ignores ``tests/e2e``). They need Debian's ``chromium`` and
``chromium-driver`` packages and ``requirements-e2e.txt``; when either is
missing the run fails with a message that says what to install, never a
skip that would read as a pass. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("E2E_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Chromium as a quiet, offline, sandbox-less headless browser (CI runs as root).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1440,900",
]


@pytest.fixture(scope="session")
def browser(django_db_setup, live_server) -> Iterator[object]:
    """A headless Chromium session (Selenium WebDriver), closed at the end of the run.

    It depends on the test database and the live server so that it quits
    before either is torn down: its keep-alive connections hold live-server
    threads (and their database connections) open, which would stop
    PostgreSQL from dropping the test database and make those threads close
    SQLite's shared in-memory connection from the wrong thread.
    """
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"No Chromium for the browser tests (missing: {', '.join(missing)}). "
            "Install Debian's packages: apt-get install -y chromium chromium-driver",
            pytrace=False,
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(
            "selenium is not installed: pip install -r requirements-e2e.txt "
            "(make test-e2e does it)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    # Both paths are given, so Selenium never tries to download a driver.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder screenshots are saved in (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
