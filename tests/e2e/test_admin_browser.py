"""The result-log admin in a real headless Chromium against a live server.

One staff session walks through what a staff member does: log in, filter
by kind, search an n, evict a result from the cache, open its detail page
(full value, copy button, API link) and the statistics page, with a
screenshot of each step in ``test-artifacts/``. Redis and the database are
the real test ones; reference values are computed here independently.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from django.core.cache import caches
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from compute import services
from compute.domain.query import ResultQuery
from tests.support.callers import SETUP

PASSWORD = "e2e-browser-pass"  # a throwaway test account

WIDTH, HEIGHT = 1440, 900  # a laptop screen
FIB_NS = (1, 10, 100, 1000, 10_000, 100_000)
PI_NS = (10, 1000, 10**5, 10**8, 10**12)
PI_DIGITS = ((1000, 30), (10**6, 100))


def fib_reference(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def decimal(number: int) -> str:
    """Return ``number`` in decimal, past Python's default 4,300-digit conversion limit."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return str(number)
    finally:
        sys.set_int_max_str_digits(limit)


def shoot(driver, folder: Path, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot (the whole page's height when ``full_page``) and return its path."""
    path = folder / name
    if full_page:
        page, chrome = driver.execute_script(
            "return [document.documentElement.scrollHeight,"
            " window.outerHeight - window.innerHeight]"
        )
        driver.set_window_size(WIDTH, min(max(page + chrome, HEIGHT), 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, HEIGHT)
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    return path


def wait_for(driver, css: str):
    return WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def click_to_load(driver, element) -> None:
    """Click ``element`` and wait until the page it leads to has replaced this one.

    Without it, what the test looks for next may still be found on the old
    page (a success message from the step before), or vanish under it.
    """
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 10).until(ec.staleness_of(page))


def listed_names(driver) -> list[str]:
    """Return "kind(n)" for every row of the changelist page."""
    rows = driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    return [
        f"{r.find_element(By.CSS_SELECTOR, '.field-kind').text}"
        f"({r.find_element(By.CSS_SELECTOR, '.field-n_display').text.replace(',', '')})"
        for r in rows
    ]


@pytest.fixture
def logged_results(transactional_db) -> None:
    """Compute a spread of results through the service: log rows and Redis entries."""
    for n in FIB_NS:
        services.result_get(caller=SETUP, query=ResultQuery("fib", n))
    for n in PI_NS:
        services.result_get(caller=SETUP, query=ResultQuery("pi", n))
    for n, digits in PI_DIGITS:
        services.result_get(caller=SETUP, query=ResultQuery("pi", n, digits=digits))


def test_staff_browses_filters_searches_evicts_and_reads_statistics(
    browser, artifacts, live_server, django_user_model, logged_results, redis_client
):
    driver = browser
    driver.set_window_size(WIDTH, HEIGHT)
    django_user_model.objects.create_superuser("staff", "staff@example.invalid", PASSWORD)
    fib1000_key = caches["default"].make_key(ResultQuery("fib", 1000).cache_key)
    assert redis_client.exists(fib1000_key)

    # Log in.
    driver.get(f"{live_server.url}/admin/")
    wait_for(driver, "#login-form")
    driver.find_element(By.NAME, "username").send_keys("staff")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    shoot(driver, artifacts, "01-login.png")
    click_to_load(driver, driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]"))
    stats_link = wait_for(driver, "#result-statistics-module a")
    assert "Computed results" in driver.find_element(By.ID, "content-main").text
    shoot(driver, artifacts, "02-index.png")

    # The changelist, filtered by kind.
    driver.get(f"{live_server.url}/admin/compute/computedresult/")
    wait_for(driver, "#result_list")
    assert len(listed_names(driver)) == len(FIB_NS) + len(PI_NS) + len(PI_DIGITS)
    click_to_load(
        driver,
        driver.find_element(By.CSS_SELECTOR, '#changelist-filter a[href*="kind__exact=fib"]'),
    )
    WebDriverWait(driver, 10).until(lambda d: "kind__exact=fib" in d.current_url)
    names = listed_names(driver)
    assert sorted(names) == sorted(f"fib({n})" for n in FIB_NS)
    states = {c.text for c in driver.find_elements(By.CSS_SELECTOR, "td.field-in_redis")}
    assert states == {"yes"}
    shoot(driver, artifacts, "03-filter-fib.png")

    # At 1400 px every column fits: "in Redis" and the whole date, no scrollbar.
    driver.set_window_size(1400, HEIGHT)
    driver.get(f"{live_server.url}/admin/compute/computedresult/")
    wait_for(driver, "#result_list")
    fits = driver.execute_script(
        """
        const box = document.querySelector('#changelist .results');
        const view = document.documentElement.clientWidth;
        const cells = [...document.querySelectorAll('td.field-in_redis, td.field-computed_when')];
        return {
          scrolls: box.scrollWidth > box.clientWidth || document.documentElement.scrollWidth > view,
          outside: cells.filter(c => c.getBoundingClientRect().right > view).length,
          clipped: cells.filter(c => c.scrollWidth > c.clientWidth).length,
          header: document.querySelector('th.column-in_redis')
            .getBoundingClientRect().right <= view,
        };
        """
    )
    assert fits == {"scrolls": False, "outside": 0, "clipped": 0, "header": True}
    dates = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "td.field-computed_when")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", d) for d in dates)
    path = artifacts / "03b-changelist-1400px.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, HEIGHT)
    driver.get(f"{live_server.url}/admin/compute/computedresult/?kind__exact=fib")
    wait_for(driver, "#result_list")

    # Search an n within the filter.
    search = driver.find_element(By.ID, "searchbar")
    search.clear()
    search.send_keys("1000", Keys.ENTER)
    WebDriverWait(driver, 10).until(lambda d: "q=1000" in d.current_url)
    assert listed_names(driver) == ["fib(1000)"]
    preview = driver.find_element(By.CSS_SELECTOR, "td.field-preview_display").text
    fib1000 = str(fib_reference(1000))
    assert preview == f"{fib1000[:10]}…{fib1000[-10:]}\n({len(fib1000)} digits)"
    shoot(driver, artifacts, "04-search-1000.png")

    # Evict it from the cache with the action.
    driver.find_element(By.CSS_SELECTOR, "#result_list input.action-select").click()
    Select(driver.find_element(By.NAME, "action")).select_by_value("evict_from_cache")
    click_to_load(driver, driver.find_element(By.CSS_SELECTOR, 'button[name="index"]'))
    message = wait_for(driver, ".messagelist li.success").text
    assert message.startswith("Evicted 1 result from the cache: fib(1000).")
    assert not redis_client.exists(fib1000_key)
    assert driver.find_element(By.CSS_SELECTOR, "td.field-in_redis").text == "no"
    shoot(driver, artifacts, "05-evicted.png")

    # The detail page: the full value, the copy button, the API link.
    click_to_load(driver, driver.find_element(By.CSS_SELECTOR, "#result_list th.field-kind a"))
    value = wait_for(driver, "pre#result-value")
    assert driver.execute_script("return arguments[0].textContent", value) == fib1000
    overflow = driver.execute_script("return getComputedStyle(arguments[0]).overflowY", value)
    assert overflow == "auto"
    link = driver.find_element(By.CSS_SELECTOR, "a.result-api-link")
    assert link.get_attribute("href") == f"{live_server.url}/api/fib/1000/"
    driver.find_element(By.CSS_SELECTOR, "button.result-copy").click()
    status = driver.find_element(By.CSS_SELECTOR, ".result-copy-status")
    WebDriverWait(driver, 10).until(lambda d: status.text)
    assert status.text == f"Copied {len(fib1000):,} characters."
    shoot(driver, artifacts, "06-detail.png", full_page=True)
    click_to_load(driver, link)
    WebDriverWait(driver, 10).until(lambda d: "/api/fib/1000/" in d.current_url)
    assert '"cached":true' in driver.find_element(By.TAG_NAME, "body").text.replace(" ", "")

    # A 20,899-digit value stays in a bounded block that scrolls.
    driver.get(f"{live_server.url}/admin/compute/computedresult/?kind__exact=fib&q=100000")
    click_to_load(driver, wait_for(driver, "#result_list th.field-kind a"))
    value = wait_for(driver, "pre#result-value")
    assert driver.execute_script("return arguments[0].textContent", value) == decimal(
        fib_reference(100_000)
    )
    scroll, visible = driver.execute_script(
        "return [arguments[0].scrollHeight, arguments[0].clientHeight]", value
    )
    assert scroll > 5 * visible
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", value)
    shoot(driver, artifacts, "07-detail-large-value.png")

    # The statistics page, reached from the admin index.
    driver.get(f"{live_server.url}/admin/")
    stats_link = wait_for(driver, "#result-statistics-module a")
    click_to_load(driver, stats_link)
    chart = wait_for(driver, "svg.result-chart")
    points = chart.find_elements(By.CSS_SELECTOR, ".point")
    assert len(points) == len(FIB_NS) + len(PI_NS) + len(PI_DIGITS)
    counts = driver.find_element(By.ID, "result-counts").text
    assert f"fib {len(FIB_NS)}" in counts
    assert f"pi {len(PI_NS) + len(PI_DIGITS)} {len(PI_DIGITS)}" in counts
    ratio = driver.find_element(By.ID, "hit-ratio").text
    assert ratio.endswith("%") or ratio == "no lookups yet"
    shoot(driver, artifacts, "08-statistics.png", full_page=True)

    # A pi result's page shows its convergence picture; its buttons evict and recompute.
    driver.get(f"{live_server.url}/admin/compute/computedresult/?kind__exact=pi&q=1000")
    double = "//tr[td[contains(@class,'field-precision_display')][.='double']]"
    click_to_load(
        driver, driver.find_element(By.XPATH, f"{double}/th[contains(@class,'field-kind')]/a")
    )
    picture = wait_for(driver, "img.result-convergence")
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return arguments[0].naturalWidth", picture) > 0
    )
    assert picture.get_attribute("src").endswith("/api/pi/1000/convergence/")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", picture)
    shoot(driver, artifacts, "09-pi-detail-convergence.png")
    pi_key = caches["default"].make_key(ResultQuery("pi", 1000).cache_key)
    click_to_load(driver, driver.find_element(By.ID, "evict-button"))
    message = wait_for(driver, ".messagelist li.success").text
    assert message.startswith("Evicted 1 result from the cache")
    assert not redis_client.exists(pi_key)
    click_to_load(driver, driver.find_element(By.ID, "recompute-button"))
    message = wait_for(driver, ".messagelist li.success").text
    assert message.startswith("Recomputed 1 result")
    assert redis_client.exists(pi_key)
    shoot(driver, artifacts, "10-pi-detail-recomputed.png")


# Rows as wide as the data allows: 18-19-digit n and moduli (with thousands
# separators), 1,000-digit pi previews with their "(N digits)" suffix, the
# longest value of all (fib(1,000,000): "(208,988 digits)").
BIG = 10**18


def wide_queries() -> list[ResultQuery]:
    queries = [ResultQuery("fib", 1_000_000)]
    for k in range(1, 17):
        queries.append(ResultQuery("fib", BIG - k, mod=BIG - 2 * k))
        queries.append(ResultQuery("pi", BIG - k, digits=1000))
        queries.append(ResultQuery("pi", BIG - 100 - k))
    queries.append(ResultQuery("fib", BIG, mod=BIG))
    return queries


def log_in(driver, live_server, django_user_model) -> None:
    django_user_model.objects.create_superuser("staff", "staff@example.invalid", PASSWORD)
    driver.get(f"{live_server.url}/admin/login/")
    wait_for(driver, "#login-form")
    driver.find_element(By.NAME, "username").send_keys("staff")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    click_to_load(driver, driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]"))
    wait_for(driver, "#content-main")


def test_the_changelist_fits_1400_px_whatever_the_data(
    browser, artifacts, live_server, django_user_model, transactional_db
):
    driver = browser
    queries = wide_queries()
    for query in queries:
        services.result_get(caller=SETUP, query=query)
    log_in(driver, live_server, django_user_model)
    driver.set_window_size(1400, HEIGHT)
    try:
        driver.get(f"{live_server.url}/admin/compute/computedresult/")
        wait_for(driver, "#result_list")
        assert len(listed_names(driver)) == min(len(queries), 50)  # a full page
        fits = driver.execute_script(
            """
            const table = document.getElementById('result_list');
            const box = document.querySelector('#changelist .results');
            const view = document.documentElement.clientWidth;
            const cells = [...table.querySelectorAll('td, th')];
            return {
              table: table.getBoundingClientRect().width,
              box: box.clientWidth,
              scrolls: box.scrollWidth > box.clientWidth
                || document.documentElement.scrollWidth > view,
              outside: cells.filter(c => c.getBoundingClientRect().right > view + 0.5).length,
              spills: cells.filter(c => c.scrollWidth > c.clientWidth + 1
                && getComputedStyle(c).textOverflow !== 'ellipsis').length,
            };
            """
        )
        driver.save_screenshot(str(artifacts / "03c-changelist-1400px-wide-data.png"))
        assert fits["table"] <= fits["box"], fits
        assert (fits["scrolls"], fits["outside"], fits["spills"]) == (False, 0, 0), fits
        # Nothing a staff member needs is cut: n, the modulus and the suffix read in full.
        text = driver.find_element(By.ID, "result_list").text
        assert "999,999,999,999,999,999" in text
        assert "mod 999,999,999,999,999,998" in text
        assert "1,000,000,000,000,000,000" in text
        assert "(208,988 digits)" in text and "(1,000 digits)" in text
    finally:
        driver.set_window_size(WIDTH, HEIGHT)
