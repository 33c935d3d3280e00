"""report.html opened in a real headless Chromium: every image loads, the tables are there.

Drives the Debian `chromium` + `chromium-driver` binaries through Selenium with
an explicit driver path, so nothing is downloaded. Skipped only where Chromium
itself is not installed (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from test_process import make_identity_results, make_label_results

from bench.process import process_results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
#: flags for a closed network: no background connections, no component updates
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000", "--hide-scrollbars"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="headless Chromium not installed (Debian: apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser(tmp_path: Path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is needed to drive Chromium: pip install 'featbench[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


IMAGES = """return Array.from(document.images).map(i => ({src: i.getAttribute('src'),
    complete: i.complete, width: i.naturalWidth}));"""


def _open(driver, report: Path) -> list[dict]:
    """Load the page, wait until every image has loaded or failed, list them."""
    driver.get(report.resolve().as_uri())
    images = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(Array.from(document.images).map(i => i.complete ? null :"
        " new Promise(r => { i.onload = r; i.onerror = r; }))).then(() => done(true));")
    assert images is True
    return driver.execute_script(IMAGES)


def _screenshot(driver, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 100, 12000))
    assert driver.save_screenshot(str(path))


def test_identity_report_loads_in_chromium(browser, tmp_path: Path):
    make_identity_results("copydetect-browser")
    written = process_results("copydetect-browser", gallery_select="per-attack")
    report = written[-1]
    images = _open(browser, report)
    gallery_imgs = [i for i in images if "galleries/" in i["src"]]
    assert len(images) >= 10 and gallery_imgs
    broken = [i["src"] for i in images if not i["complete"] or i["width"] == 0]
    assert broken == [], f"images that did not load: {broken}"
    assert any("attack_heatmap_k1.png" in i["src"] for i in images)
    for table_id in ("summary-table", "best-qps-k1", "best-qps-k5", "environment-table",
                     "all-runs"):
        rows = browser.execute_script(
            f"const t = document.getElementById('{table_id}'); return t ? t.rows.length : -1;")
        assert rows > 1, table_id
    assert browser.title.startswith("copydetect-browser")
    shot = tmp_path / "report.png"
    _screenshot(browser, shot)
    with Image.open(shot) as img:
        assert img.width >= 1000 and img.height > 2000


def test_broken_image_is_detected(browser, tmp_path: Path):
    """The check itself must be able to fail: a deleted plot shows up as a broken image."""
    make_label_results("labels-browser")
    written = process_results("labels-browser")
    (written[-1].parent / "pr_curves.png").unlink()
    images = _open(browser, written[-1])
    broken = [i["src"] for i in images if i["width"] == 0]
    assert broken == ["pr_curves.png"]
