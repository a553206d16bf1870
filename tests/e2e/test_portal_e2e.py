"""The portal of the whole demo in headless Chromium (issue 15's browser test).

`renkei demo --keep-serving` runs every party as its own process; once it serves, a
browser signs in with 佐藤 花子's card from the demo's notices folder, sees exactly the
serials the demo printed for her (none of the other two people's), opens an entry,
applies for its details and sees them once the agency has answered, downloads the PDF,
and saves a screenshot of each page. The demo then stops and leaves no process behind.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from test_demo import processes_mentioning

from ops.demo_data import residents

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEMO = (sys.executable, "-m", "ops.cli", "demo")
READY_SECONDS = 150.0  # the demo's whole traffic runs before it serves

requires_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed",
)


class KeptDemo:
    """`renkei demo --keep-serving N` in a subprocess, its output read as it comes."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.lines: list[str] = []
        self.serving = threading.Event()
        self.process = subprocess.Popen(
            [*DEMO, "--state-dir", str(state), "--keep-serving", "170"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "every party stays up" in line:
                self.serving.set()
        self.serving.set()  # ended: whoever waits stops waiting

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_serving(self) -> None:
        if not self.serving.wait(READY_SECONDS) or self.process.poll() is not None:
            raise AssertionError("the demo did not start serving:\n" + self.output[-4000:])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM ends the serving; the demo stops every party
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        self._reader.join(10)
        return code


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[KeptDemo]:
    kept = KeptDemo(tmp_path / "demo-state")
    try:
        yield kept
    finally:
        kept.stop()


def _spki(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _browser(tmp_path: Path, spki: str, downloads: Path) -> Any:
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
        # The demo's web CA is no public CA: trust exactly the portal's key.
        f"--ignore-certificate-errors-spki-list={spki}",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "plugins.always_open_pdf_externally": True,  # download, not the viewer
        },
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def _printed_serials(output: str) -> dict[str, list[int]]:
    """The serials the demo printed for each person ("    山田 太郎: 1, 2, 3")."""
    found = {}
    for person in residents():
        line = re.search(rf"^    {person.name}: ([\d, ]+)$", output, re.M)
        assert line is not None, f"the demo printed no serials for {person.name}"
        found[person.resident_code] = [int(n) for n in line.group(1).split(",")]
    return found


def _shown_serials(browser: Any) -> list[int]:
    from selenium.webdriver.common.by import By

    cells = browser.find_elements(By.CSS_SELECTOR, "table.history-table tbody th[scope=row] a")
    return [int(c.text) for c in cells]


@requires_chromium
def test_a_person_reads_their_history_in_a_browser(demo: KeptDemo, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    demo.wait_serving()
    url = re.search(r"opens (https://127\.0\.0\.1:\d+)/signin", demo.output)
    assert url is not None, demo.output[-3000:]
    base = url.group(1)
    serials = _printed_serials(demo.output)
    sato = residents()[1]
    mine = serials[sato.resident_code]
    others = {s for code, got in serials.items() if code != sato.resident_code for s in got}
    notices = demo.state / "notices"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = _browser(tmp_path, _spki(demo.state / "portal" / "web" / "portal.pem"), downloads)
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(base + "/history")
        wait.until(expected_conditions.url_to_be(base + "/signin"))
        browser.save_screenshot(str(shots / "1-signin.png"))
        browser.find_element(By.ID, "card-key").send_keys(
            str(notices / f"{sato.resident_code}.card-key.pem")
        )
        browser.find_element(By.ID, "card-cert").send_keys(
            str(notices / f"{sato.resident_code}.card.pem")
        )
        browser.find_element(By.ID, "signin-button").click()
        try:
            wait.until(expected_conditions.url_to_be(base + "/history"))
        except Exception:
            browser.save_screenshot(str(shots / "signin-failed.png"))
            status = browser.find_element(By.ID, "signin-status").text
            raise AssertionError(f"not signed in; the page says {status!r}") from None
        browser.save_screenshot(str(shots / "2-history.png"))

        # Exactly her exchanges, newest first, each proved; none of the other two people's.
        shown = _shown_serials(browser)
        assert shown == sorted(mine, reverse=True)
        assert not set(shown) & others
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "検証済み" in page
        assert "検証失敗" not in page
        # Another person's entry is not found, and says nothing of it.
        browser.get(f"{base}/history/{min(others)}")
        missing = browser.find_element(By.TAG_NAME, "body").text
        assert "ページが見つかりません" in missing
        assert "通番" not in missing

        # An entry of hers that was answered: apply for its requester's details.
        serial = mine[0]  # 全国健康保険協会 asked 渋谷区 for her resident record: OK
        browser.get(f"{base}/history/{serial}")
        browser.save_screenshot(str(shots / "3-entry.png"))
        browser.find_element(By.CSS_SELECTOR, "form[action$='/details'] button").click()
        wait.until(expected_conditions.url_to_be(f"{base}/history/{serial}"))
        give_up = time.monotonic() + 30
        while "(11) 提供された情報" not in _details_text(browser):
            assert time.monotonic() < give_up, _details_text(browser)
            time.sleep(1)
            browser.refresh()  # each visit asks the hub again while the application is pending
        details = _details_text(browser)
        assert "回答あり" in details
        assert "(12) 利用目的" in details
        assert "健康保険の保険給付の支給" in details
        browser.execute_script("document.querySelector('section.details').scrollIntoView()")
        browser.save_screenshot(str(shots / "4-details.png"))

        # The PDF download, from the history page's link.
        browser.get(base + "/history")
        browser.find_element(By.CSS_SELECTOR, "a[href^='/history.pdf']").click()
        give_up = time.monotonic() + 30
        while not [p for p in downloads.glob("*.pdf")]:
            assert time.monotonic() < give_up, sorted(downloads.iterdir())
            time.sleep(0.5)
        pdf = next(downloads.glob("*.pdf"))
        time.sleep(0.5)  # Chromium renames the file once it is whole
        assert pdf.read_bytes().startswith(b"%PDF-")
        browser.save_screenshot(str(shots / "5-after-download.png"))
    finally:
        browser.quit()
    for name in ("1-signin", "2-history", "3-entry", "4-details", "5-after-download"):
        assert (shots / f"{name}.png").stat().st_size > 0
    code = demo.stop()
    assert not processes_mentioning(str(demo.state))
    assert code == 0, demo.output[-3000:]  # SIGTERM ends the serving; the demo exits 0
    if shutil.which("pdftotext") is not None:
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert "住民票関係情報" in text


def _details_text(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.CSS_SELECTOR, "section.details")
    return found[0].text if found else ""
