"""The front page in a real headless Chromium: the form submitted, the result shown, the picture.

A person opens ``/``, asks for pi(1000) with 20 digits, then fib(100)
twice (computed, then cached), then types a bad n, and looks at the
convergence picture; a screenshot of each step goes to ``test-artifacts/``.
Reference values are computed here (a Fibonacci loop; SPEC's pi(100)).
"""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_admin_browser import (
    HEIGHT,
    WIDTH,
    click_to_load,
    fib_reference,
    shoot,
    wait_for,
)


def ask(driver, kind: str, n: str, digits: str = "", mod: str = "") -> None:
    driver.find_element(By.CSS_SELECTOR, f'input[name="kind"][value="{kind}"]').click()
    for name, value in (("n", n), ("digits", digits), ("mod", mod)):
        field = driver.find_element(By.ID, f"id_{name}")
        field.clear()
        field.send_keys(value)
    # The answer is a new page: wait for the old one to go (asking the same
    # question twice leaves the URL as it was, so the URL cannot tell).
    click_to_load(driver, driver.find_element(By.CSS_SELECTOR, "#ask-form button[type=submit]"))
    WebDriverWait(driver, 10).until(lambda d: f"n={n}" in d.current_url)
    wait_for(driver, "#answer")


def picture_loaded(driver) -> bool:
    return driver.execute_script(
        "const i = document.getElementById('convergence-picture');"
        "return i.complete && i.naturalWidth > 0"
    )


def test_a_person_asks_for_results_and_sees_the_picture(browser, artifacts, live_server):
    driver = browser
    driver.set_window_size(WIDTH, HEIGHT)
    driver.get(f"{live_server.url}/")
    wait_for(driver, "#ask-form")
    assert "mathsite" in driver.title
    WebDriverWait(driver, 10).until(picture_loaded)
    links = {a.get_attribute("pathname") for a in driver.find_elements(By.CSS_SELECTOR, "#links a")}
    assert {"/api/docs/", "/api/schema/", "/admin/"} <= links
    shoot(driver, artifacts, "front-01-page.png", full_page=True)

    ask(driver, "pi", "100", digits="20")
    assert driver.find_element(By.ID, "result").text == "3.1319807472443628019"
    assert driver.find_element(By.ID, "cached").text == "cached: false"
    WebDriverWait(driver, 10).until(picture_loaded)
    src = driver.find_element(By.ID, "convergence-picture").get_attribute("src")
    assert src.endswith("/api/pi/100/convergence/")
    shoot(driver, artifacts, "front-02-pi-digits.png", full_page=True)

    ask(driver, "fib", "100")
    assert driver.find_element(By.ID, "result").text == str(fib_reference(100))
    assert driver.find_element(By.ID, "cached").text == "cached: false"
    ask(driver, "fib", "100")
    assert driver.find_element(By.ID, "cached").text == "cached: true"
    shoot(driver, artifacts, "front-03-fib-cached.png")

    ask(driver, "fib", "abc")
    message = driver.find_element(By.ID, "answer-errors").text
    assert message == "n must be a whole number written with the digits 0-9."
    shoot(driver, artifacts, "front-04-bad-input.png")

    driver.get(f"{live_server.url}/api/pi/1000000000000000000/convergence/")
    wait_for(driver, "svg.convergence-chart")
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg path.line")) == 2
    shoot(driver, artifacts, "front-05-convergence-10e18.png")
