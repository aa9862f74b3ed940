"""The web app in a real headless Chromium: the recordings view, the player, snapshot and the phone layout."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from selenium import webdriver
from selenium.webdriver.common.keys import Keys

from pipeline.record.library import Library, recording_name
from pipeline.record.mp4 import Mp4Writer
from pipeline.video.demo import DemoScene
from tests.support.browser import ARTIFACTS, alert_showing, displayed, js, listed, page_state, video
from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening, gateway_up

# A zone other than the machine's (often UTC): the day filter must use the viewer's local midnight.
ZONE = "America/New_York"
PAGE = 24


def card_text(driver: webdriver.Chrome, name: str) -> str:
    return driver.find_element("css selector", f'#recordings-list [data-name="{name}"]').text


def settled(driver: webdriver.Chrome, count: int) -> Callable[[], bool]:
    """``count`` recordings listed and nothing more being fetched."""
    return lambda: (len(listed(driver)) == count
                    and js(driver, "document.getElementById('recordings-more').dataset.state") != "loading")


def test_a_new_recording_appears_live_plays_and_is_deleted(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_stage("recorder", "--pre-seconds", "1", "--post-seconds", "1")
    start_stage("detector")
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    browser.get(f"http://127.0.0.1:{ports.http}/#recordings")
    wait_for(lambda: displayed(browser, "empty-recordings"), 10, "the empty state")
    assert page_state(browser)["view"] == "recordings"
    assert browser.find_element("id", "empty-recordings").text == (
        "No recordings yet — movement in front of the camera starts one.")
    browser.execute_script("window.notReloaded = true")

    start_stage("capture", "--source", "demo")
    # The visitor walks through 2.3-7.4 s after capture starts; the recording is saved about 3 s later.
    wait_for(lambda: len(listed(browser)) == 1, 25, "the new recording to appear in the open list")
    assert js(browser, "window.notReloaded") is True
    (name,) = listed(browser)
    assert not displayed(browser, "empty-recordings")
    sidecar = Library(ports.recordings).get(name)
    assert sidecar is not None
    text = card_text(browser, name)
    assert js(browser, f"new Date({sidecar['start']} * 1000).toLocaleString()") in text
    seconds = round(sidecar["duration"])
    assert f"{seconds // 60}:{seconds % 60:02d}" in text and "KB" in text
    wait_for(lambda: js(browser, f"document.querySelector('[data-name=\"{name}\"] img').complete "
                                 f"&& document.querySelector('[data-name=\"{name}\"] img').naturalWidth > 0"),
             5, "the thumbnail to load")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "recordings.png"))

    browser.find_element("css selector", f'[data-name="{name}"] button').click()
    wait_for(lambda: page_state(browser)["player"] == name, 5, "the player to open")
    assert displayed(browser, "player")
    wait_for(lambda: video(browser, "readyState") >= 2 or video(browser, "error"), 10, "the video to load")
    assert video(browser, "error") is None
    assert abs(video(browser, "duration") - sidecar["duration"]) < 0.5
    wait_for(lambda: video(browser, "currentTime") > 0.5, 10, "playback to advance")
    assert js(browser, "location.hash") == f"#recordings/{name}"
    assert browser.find_element("id", "player-prev").get_attribute("disabled") is not None
    assert browser.find_element("id", "player-next").get_attribute("disabled") is not None
    download = browser.find_element("id", "player-download")
    assert download.get_attribute("href").endswith(f"/recordings/{name}.mp4")
    assert re.fullmatch(r"cam0_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.mp4", download.get_attribute("download"))
    browser.save_screenshot(str(ARTIFACTS / "player.png"))

    browser.find_element("id", "player-delete").click()
    wait_for(lambda: alert_showing(browser), 5, "the confirmation")
    browser.switch_to.alert.accept()
    wait_for(lambda: listed(browser) == [] and page_state(browser)["player"] is None, 5, "the entry to go")
    assert not displayed(browser, "player")
    assert not browser.find_elements("css selector", f'[data-name="{name}"]')
    assert sorted(p.name for p in ports.recordings.glob(f"{name}*")) == []
    wait_for(lambda: displayed(browser, "empty-recordings"), 5, "the empty state again")
    wait_for(lambda: js(browser, "location.hash") == "#recordings", 5, "the URL to leave the player")


def make_recordings(root: Path, starts: list[float], cut_short: frozenset[float] = frozenset()) -> list[str]:
    """Small real recordings (5 frames of the demo scene at 160x120), newest first as the page lists them."""
    library = Library(root)
    root.mkdir(exist_ok=True)
    scene = DemoScene(160, 120, seed=1)
    names = []
    for k, start in enumerate(starts):
        name = recording_name("cam0", start)
        writer = Mp4Writer(library.part_path(name), 160, 120)
        jpegs = [cv2.imencode(".jpg", scene.render(3 + k % 5 + i / 10, start + i / 10))[1].tobytes()
                 for i in range(5)]
        for i, jpeg in enumerate(jpegs):
            writer.write(jpeg, start + i / 10)
        writer.close()
        library.publish(name, writer.path, jpegs[2], {"camera": "cam0", "start": start, "end": start + 0.5,
                                                      "duration": 0.5, "cut_short": start in cut_short})
        names.append(name)
    return sorted(names, reverse=True)


def set_day(driver: webdriver.Chrome, value: str) -> None:
    # Typing into a date input depends on the browser's locale; setting the value does not.
    driver.execute_script("const i = document.getElementById('day-filter'); i.value = arguments[0];"
                          "i.dispatchEvent(new Event('change', {bubbles: true}))", value)


def test_recordings_page_by_page_filter_by_local_day_navigate_and_errors(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    browser.set_window_size(900, 700)
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ZONE})
    browser.get(f"http://127.0.0.1:{ports.http}/#recordings")
    wait_for(lambda: displayed(browser, "empty-recordings"), 10, "the empty state with no recordings folder")

    zone = ZoneInfo(ZONE)
    at = lambda d, h, m=0: datetime(2026, 3, d, h, m, tzinfo=zone).timestamp()  # noqa: E731
    # 1 March, local time: 30 recordings, the last at 23:30 (already 2 March in UTC, as its name says).
    day1 = [at(1, 8 + k // 2, 30 * (k % 2)) for k in range(29)] + [at(1, 23, 30)]
    day2 = [at(2, 0, 30), *(at(2, h) for h in (6, 12, 18))]
    names = make_recordings(ports.recordings, day1 + day2, frozenset({day2[0]}))
    names_day1 = [n for n in names if n in {recording_name("cam0", s) for s in day1}]
    names_day2 = [n for n in names if n not in names_day1]
    assert recording_name("cam0", at(1, 23, 30)).startswith("20260302")

    browser.refresh()
    wait_for(settled(browser, PAGE), 10, "the first page")
    time.sleep(0.3)
    assert listed(browser) == names[:PAGE], "one page only until the list is scrolled"
    assert js(browser, "document.documentElement.scrollHeight > innerHeight + 600")
    browser.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
    wait_for(settled(browser, len(names)), 10, "the second page after scrolling")
    assert listed(browser) == names
    assert len(browser.find_elements("css selector", "#recordings-list [data-name]")) == len(names)
    assert "cut short" in card_text(browser, recording_name("cam0", day2[0])).lower()
    assert "cut short" not in card_text(browser, names[0]).lower()
    assert js(browser, "document.getElementById('recordings-disk').textContent").endswith("free")

    set_day(browser, "2026-03-01")
    wait_for(lambda: listed(browser) == names_day1[:PAGE], 10, "the first page of 1 March, local time")
    browser.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
    wait_for(lambda: listed(browser) == names_day1, 10, "the rest of 1 March")
    set_day(browser, "2026-03-02")
    wait_for(lambda: listed(browser) == names_day2, 10, "only 2 March, local time")
    browser.execute_script("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "recordings-day.png"))
    set_day(browser, "2026-03-05")
    wait_for(lambda: displayed(browser, "empty-recordings"), 10, "the empty state of an empty day")
    assert browser.find_element("id", "empty-recordings").text == "No recordings on this day."
    browser.find_element("id", "day-filter-clear").click()
    wait_for(lambda: listed(browser)[:PAGE] == names[:PAGE], 10, "every day again")
    assert js(browser, "document.getElementById('day-filter').value") == ""

    # Newer/older in list order, with the keyboard; disabled at the newest end.
    browser.find_element("css selector", f'[data-name="{names[0]}"] button').click()
    wait_for(lambda: page_state(browser)["player"] == names[0], 5, "the player")
    assert browser.find_element("id", "player-prev").get_attribute("disabled") is not None
    assert browser.find_element("id", "player-next").get_attribute("disabled") is None
    wait_for(lambda: video(browser, "readyState") >= 2, 10, "the video to load")
    active = browser.switch_to.active_element
    active.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: page_state(browser)["player"] == names[1], 5, "→ to show the next older one")
    browser.find_element("id", "player-next").click()
    wait_for(lambda: page_state(browser)["player"] == names[2], 5, "Next to show the one after")
    browser.switch_to.active_element.send_keys(Keys.ARROW_LEFT)
    wait_for(lambda: page_state(browser)["player"] == names[1], 5, "← to go back")
    assert js(browser, "location.hash") == f"#recordings/{names[1]}"
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(lambda: page_state(browser)["player"] is None and not displayed(browser, "player"), 5, "Esc to close")
    wait_for(lambda: js(browser, "location.hash") == "#recordings", 5, "the URL to leave the player")

    # The oldest recording: Next is disabled at the end of the last page.
    browser.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
    wait_for(settled(browser, len(names)), 10, "every page")
    browser.find_element("css selector", f'[data-name="{names[-1]}"] button').click()
    wait_for(lambda: page_state(browser)["player"] == names[-1], 5, "the player on the oldest")
    assert browser.find_element("id", "player-next").get_attribute("disabled") is not None
    assert browser.find_element("id", "player-prev").get_attribute("disabled") is None

    # Deleted behind the page's back: the API's error shows in a toast and the entry goes.
    Library(ports.recordings).delete(names[-1])
    browser.find_element("id", "player-delete").click()
    wait_for(lambda: alert_showing(browser), 5, "the confirmation")
    browser.switch_to.alert.accept()
    # Selenium reads a toast's text only once its fade-in has made it visible.
    wait_for(lambda: any("no recording named" in t.text for t in browser.find_elements("css selector", ".toast")),
             5, "a toast with the API's error")
    wait_for(lambda: names[-1] not in listed(browser) and page_state(browser)["player"] is None, 5,
             "the entry to leave the list")

    # A link to one recording opens it.
    browser.get(f"http://127.0.0.1:{ports.http}/#recordings/{names[5]}")
    wait_for(lambda: page_state(browser)["player"] == names[5], 10, "the linked recording in the player")


def test_snapshot_fullscreen_and_the_phone_layout(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports, tmp_path: Path
) -> None:
    start_stage("gateway")
    start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: page_state(browser).get("frames", 0) >= 3, 15, "live frames")
    assert js(browser, "innerWidth") == 390
    assert js(browser, "document.documentElement.scrollWidth <= innerWidth")
    assert displayed(browser, "snapshot-button") and displayed(browser, "fullscreen-button")
    assert page_state(browser)["view"] == "live" and browser.find_element("css selector", "#live img").is_displayed()
    wait_for(lambda: displayed(browser, "latest-none"), 5, "the latest recordings' empty state under the picture")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "live-phone.png"))

    browser.execute_script(
        "window.downloads = []; const click = HTMLAnchorElement.prototype.click;"
        "HTMLAnchorElement.prototype.click = function () {"
        "  window.downloads.push([this.download, this.href]); return click.call(this); }")
    before = time.time()
    browser.find_element("id", "snapshot-button").click()
    wait_for(lambda: js(browser, "window.downloads.length"), 5, "the snapshot's download")
    filename, href = js(browser, "window.downloads[0]")
    assert href.startswith("blob:")
    match = re.fullmatch(r"cam0_(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)\.jpg", filename)
    assert match, filename
    taken = datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S").timestamp()  # local time, like the page's
    assert before - 5 <= taken <= time.time() + 1, (filename, before)
    saved = downloads / filename
    wait_for(saved.exists, 10, "the snapshot file")
    image = cv2.imdecode(np.frombuffer(saved.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (480, 640)

    button = browser.find_element("id", "fullscreen-button")
    button.click()
    wait_for(lambda: js(browser, "document.fullscreenElement?.id === 'stage'"), 5, "the picture to fill the screen")
    # The button follows the fullscreenchange event, which may come a moment after fullscreenElement is set.
    wait_for(lambda: button.get_attribute("aria-pressed") == "true", 5, "the button to show full screen")
    button.click()
    wait_for(lambda: js(browser, "document.fullscreenElement === null"), 5, "full screen to end")
    wait_for(lambda: button.get_attribute("aria-pressed") == "false", 5, "the button to show full screen ended")
    # Without the Fullscreen API (iPhone Safari) the picture covers the window instead; Esc leaves.
    browser.execute_script("Object.defineProperty(document, 'fullscreenEnabled', {value: false})")
    button.click()
    covering = "document.body.classList.contains('covering')"
    assert js(browser, covering)
    assert js(browser, "document.getElementById('stage').getBoundingClientRect().height") == 844
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(lambda: not js(browser, covering), 5, "Esc to leave the covering picture")

    browser.find_element("id", "tab-recordings").click()
    wait_for(lambda: displayed(browser, "empty-recordings"), 10, "the recordings view")
    assert page_state(browser)["view"] == "recordings" and js(browser, "location.hash") == "#recordings"
    assert js(browser, "document.documentElement.scrollWidth <= innerWidth")
    assert page_state(browser)["state"] == "live", "the WebSocket stays open in the recordings view"
    browser.find_element("id", "tab-live").click()
    frames = page_state(browser)["frames"]
    wait_for(lambda: page_state(browser)["frames"] > frames + 3, 10, "live frames again")
