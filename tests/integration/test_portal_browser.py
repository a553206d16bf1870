"""The real sign-in page in headless Chromium: a person picks their card's key and
certificate files, the page signs the challenge with WebCrypto and lands on /history."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.aio import LoopThread
from support.portal_env import card_authority, peers, portal_config

from portal.bootstrap import PortalServer, start

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()) or shutil.which("chromium") is None,
    reason="Debian's chromium and chromium-driver are not installed",
)


@pytest.fixture
def browser(tmp_path: Path, spki: str) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # the test runs as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=412,915",  # a phone's viewport
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--ignore-certificate-errors-spki-list={spki}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def portal(loop: LoopThread, tmp_path: Path) -> Iterator[tuple[PortalServer, object, str]]:
    ca = card_authority(tmp_path / "card-ca")
    config, spki = portal_config(tmp_path, ca, (None, "browser"))
    both, _, _ = peers(ca)
    server = loop.run(start(config, both))
    yield server, ca, spki
    loop.run(server.stop())


@pytest.fixture
def spki(portal: tuple[PortalServer, object, str]) -> str:
    return portal[2]


def test_a_person_signs_in_with_their_card_files(
    portal: tuple[PortalServer, object, str], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    server, ca, _ = portal
    assert isinstance(browser, WebDriver)
    alice = ca.issue("alice")  # type: ignore[attr-defined]
    base = f"https://127.0.0.1:{server.port}"

    browser.get(base + "/history")
    WebDriverWait(browser, 20).until(expected_conditions.url_to_be(base + "/signin"))
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
    assert "マイナンバーカードでログイン" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(tmp_path / "signin.png"))

    browser.find_element(By.ID, "card-key").send_keys(str(alice.key_file))
    browser.find_element(By.ID, "card-cert").send_keys(str(alice.cert_file))
    browser.find_element(By.ID, "signin-button").click()
    try:
        WebDriverWait(browser, 30).until(expected_conditions.url_to_be(base + "/history"))
    except Exception:
        browser.save_screenshot(str(tmp_path / "signin-failed.png"))
        status = browser.find_element(By.ID, "signin-status").text
        raise AssertionError(f"not signed in; the page says {status!r}") from None
    assert alice.serial in browser.find_element(By.ID, "signed-in").text
    browser.save_screenshot(str(tmp_path / "history.png"))
    assert (tmp_path / "history.png").stat().st_size > 0
    # The session cookie is not readable from scripts.
    assert "__Host-session" not in str(browser.execute_script("return document.cookie"))
    cookie = browser.get_cookie("__Host-session")
    assert cookie is not None
    assert cookie["httpOnly"]
    assert cookie["secure"]
    assert cookie["sameSite"] == "Strict"

    # Signing out (the page's form, with its CSRF token) and a revoked card's refusal.
    browser.find_element(By.CSS_SELECTOR, "form[action='/signout'] button").click()
    WebDriverWait(browser, 20).until(expected_conditions.url_to_be(base + "/signin"))
    ca.revoke(alice)  # type: ignore[attr-defined]
    browser.find_element(By.ID, "card-key").send_keys(str(alice.key_file))
    browser.find_element(By.ID, "card-cert").send_keys(str(alice.cert_file))
    browser.find_element(By.ID, "signin-button").click()
    WebDriverWait(browser, 20).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "signin-status"), "失効")
    )
    assert browser.current_url == base + "/signin"
    browser.save_screenshot(str(tmp_path / "signin-revoked.png"))
