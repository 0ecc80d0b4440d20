"""The review page in a real browser: Debian's Chromium, driven by Selenium through chromedriver.

It opens the page with its token, corrects boxes with the mouse and the keyboard, undoes, and checks
the corrections file after each step. Without Chromium it is skipped, unless
BOXSTRAP_REQUIRE_BROWSER is set (CI sets it, after installing Chromium): then it fails.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from boxstrap.review_server import ReviewRun, ReviewServer, corrections_path
from datasets.annotations import read_annotations
from tests.boxstrap.test_review_server import LABELS, make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("BOXSTRAP_REQUIRE_BROWSER"):
        raise RuntimeError("BOXSTRAP_REQUIRE_BROWSER is set but Chromium or chromedriver is missing "
                           "(apt-get install chromium chromium-driver)")
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("page"))
    server = ReviewServer(ReviewRun(run))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield run, server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def saved(run: Path) -> dict:
    path = corrections_path(run)
    if not path.exists():
        return {}
    return {Path(a.image).name: a for a in read_annotations(path, "boxes-json", labels=LABELS)}


def wait_for(condition, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


def test_correct_boxes_with_the_mouse_and_the_keyboard(served, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run, server = served
    review = ReviewRun(run)
    first, second = (Path(p.item.name).name for p in review.photos[:2])
    browser.get(server.url)
    wait_for(lambda: "photo 1 of 6" in browser.find_element(By.ID, "progress").text)
    canvas = browser.find_element(By.ID, "canvas")
    body = browser.find_element(By.TAG_NAME, "body")

    # The keyboard: delete the pseudo box; the photo is saved with no box at once.
    canvas.click()  # a click, not a drag: draws nothing
    body.send_keys("x")
    wait_for(lambda: first in saved(run) and len(saved(run)[first].boxes) == 0)

    # The mouse: draw a box over most of the photo (80x64 pixels shown at 800x640).
    size = canvas.size
    ActionChains(browser).move_to_element_with_offset(canvas, -size["width"] // 4, -size["height"] // 4) \
        .click_and_hold().move_by_offset(size["width"] // 2, size["height"] // 2).release().perform()
    box = wait_for(lambda: first in saved(run) and saved(run)[first].boxes and saved(run)[first].xyxy()[0].tolist())
    assert 15 <= box[0] <= 25 and 55 <= box[2] <= 65 and 12 <= box[1] <= 20 and 44 <= box[3] <= 52
    # ... and change its class with a number key.
    body.send_keys("2")
    wait_for(lambda: saved(run)[first].labels() == ("ten",))

    # Undo twice: the class, then the drawn box.
    body.send_keys("u")
    wait_for(lambda: saved(run)[first].labels() == ("one",) if review.photos[0].label == "one" else
             saved(run)[first].labels() == (review.photos[0].label,))
    body.send_keys("u")
    wait_for(lambda: len(saved(run)[first].boxes) == 0)

    # Accept the next photo as it is (Enter moves on after saving).
    body.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: "photo 2 of 6" in browser.find_element(By.ID, "progress").text)
    body.send_keys(Keys.ENTER)
    wait_for(lambda: second in saved(run))
    assert saved(run)[second].xyxy().tolist() == [[10, 10, 40, 30]]
    wait_for(lambda: "reviewed 2 of 6" in browser.find_element(By.ID, "progress").text)

    # Reopening resumes: the reviewed photos are known, and the page starts at the first unreviewed.
    browser.get(server.url)
    wait_for(lambda: "photo 3 of 6 · reviewed 2 of 6" in browser.find_element(By.ID, "progress").text)
    browser.save_screenshot(str(tmp_path / "review.png"))
    if os.environ.get("BOXSTRAP_SCREENSHOT"):
        shutil.copy(tmp_path / "review.png", os.environ["BOXSTRAP_SCREENSHOT"])


def test_the_page_refuses_a_request_without_the_token(served, browser):
    from selenium.webdriver.common.by import By

    _, server = served
    host, port = server.server_address[:2]
    browser.get(f"http://{host}:{port}/nothing")
    browser.delete_all_cookies()  # the page's own cookie would carry the token
    browser.get(f"http://{host}:{port}/")
    assert "token" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"http://{host}:{port}/..%2f..%2fetc%2fpasswd?token={server.token}")
    assert "refused" in browser.find_element(By.TAG_NAME, "body").text
