"""The live page in a real headless Chromium against the real pipeline on the demo scene."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import REPO, Ports, Stage, wait_for
from tests.test_live import gateway_up

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("Debian's chromium and chromium-driver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,900", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def page_state(driver: webdriver.Chrome) -> dict:
    return driver.execute_script("return Object.assign({}, window.camserver || {})")


def test_live_page_shows_frames_and_recovers_from_gateway_restart(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    gateway = start_stage("gateway")
    start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")
    browser.get(f"http://127.0.0.1:{ports.http}/")

    wait_for(lambda: page_state(browser).get("frames", 0) >= 10, 20, "the page to show 10 frames")
    state = page_state(browser)
    assert state["state"] == "live" and state["demo"] is True and state["camera"] == "cam0"
    natural = browser.execute_script("const i = document.getElementById('live'); "
                                     "return [i.naturalWidth, i.naturalHeight]")
    assert natural == [640, 480]
    assert browser.find_element("id", "demo-badge").is_displayed()
    first_seq = state["lastSeq"]
    wait_for(lambda: page_state(browser)["lastSeq"] > first_seq + 5, 10, "newer frames on the page")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "live-view.png"))

    assert gateway.stop(signal.SIGTERM) == 0
    wait_for(lambda: page_state(browser)["state"] in ("reconnecting", "connecting"), 10, "the page to notice")
    start_stage("gateway")
    frames_before = page_state(browser)["frames"]
    wait_for(lambda: page_state(browser)["state"] == "live" and page_state(browser)["frames"] > frames_before + 5,
             30, "live frames again after the gateway restarted")


def test_live_page_shows_recording_and_motion_boxes_during_the_demo_visit(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_stage("gateway")
    start_stage("detector")
    start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: page_state(browser).get("motion") == "idle", 15, "the badge to say Idle before the visit")

    def recording_with_boxes() -> bool:
        state = page_state(browser)
        return state["motion"] == "recording" and bool(state["boxes"])

    wait_for(recording_with_boxes, 20, "Recording and motion boxes while the visitor walks through")
    badge = browser.find_element("id", "motion-badge")
    assert badge.get_attribute("data-motion") == "recording" and "Recording" in badge.text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "live-view-motion.png"))
    wait_for(lambda: page_state(browser)["motion"] == "idle", 20, "the badge to return to Idle after the visit")
    assert page_state(browser)["boxes"] == []
