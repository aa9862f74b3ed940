"""The page of many cameras in a real headless Chromium, against real capture processes (issue 12).

Each demo camera is its own ``python -m pipeline.capture`` on its own endpoint, small (320x240) and
slow (5 fps) to keep four of them cheap. What a person sees is checked in the page, and what the
gateway sends is checked at the gateway itself: /api/status counts, per camera, the viewers it
sends that camera's frames to, so a tile that paused must bring its camera's count to 0 while the
page's WebSocket stays open.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from selenium import webdriver
from selenium.webdriver.support.ui import Select

from pipeline.record.library import Library
from tests.support.browser import ARTIFACTS, displayed, js, listed, page_state
from tests.support.ports import Ports, free_port
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening, request


def start_cameras(start_stage: Callable[..., Stage], endpoints: dict[str, str], fps: int = 5) -> None:
    for seed, (camera, endpoint) in enumerate(endpoints.items()):
        start_stage("capture", "--source", "demo", "--camera", camera, "--frames", endpoint,
                    "--width", "320", "--height", "240", "--fps", str(fps), "--seed", str(seed))


def tiles(driver: webdriver.Chrome) -> dict[str, dict]:
    return page_state(driver)["tiles"]


def hidden_frames(driver: webdriver.Chrome) -> int:
    """Frames the page's WebSocket brought while the tab was hidden, as connection.js counts them
    (the page's own module: importing it again gives the instance the page runs)."""
    return driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                       "import('/static/connection.js').then((m) => done(m.framesWhileHidden()))")


def status(port: int) -> dict:
    return request(port, "GET", "/api/status")[1]


def viewers(port: int) -> dict[str, int]:
    """Per camera, how many viewers the gateway sends its frames to."""
    return {name: camera["viewers"] for name, camera in status(port)["cameras"].items()}


def frames_grow(driver: webdriver.Chrome, cameras: list[str], by: int = 2) -> Callable[[], bool]:
    """True once each camera's tile has shown ``by`` more frames than when this was made."""
    before = {camera: tiles(driver)[camera]["frames"] for camera in cameras}
    return lambda: all(tiles(driver)[camera]["frames"] >= before[camera] + by for camera in cameras)


def rect(driver: webdriver.Chrome, camera: str) -> dict:
    return js(driver, f"document.querySelector('.tile[data-camera=\"{camera}\"]').getBoundingClientRect().toJSON()")


def on_screen(driver: webdriver.Chrome) -> dict[str, int]:
    """Per camera, 1 when some of its tile is inside the window, else 0: what the gateway should be sending."""
    height = js(driver, "innerHeight")
    return {camera: int(box["bottom"] > 0 and box["top"] < height)
            for camera in tiles(driver) for box in [rect(driver, camera)]}


def test_tiles_play_on_screen_and_pause_off_screen_and_in_a_hidden_tab(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    endpoints = {camera: f"tcp://127.0.0.1:{free_port()}" for camera in "abcd"}
    start_stage("gateway", "--frames", ",".join(endpoints.values()))
    start_cameras(start_stage, {camera: endpoints[camera] for camera in "ab"})
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    browser.set_window_size(1280, 900)
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: sorted(tiles(browser)) == ["a", "b"] and all(t["frames"] >= 3 for t in tiles(browser).values()),
             20, "a tile for each of two cameras, each showing frames")
    assert page_state(browser)["view"] == "grid"
    browser.execute_script("window.notReloaded = true")

    # Two more cameras: tiles of their own without a reload, all four on a wide screen at once.
    start_cameras(start_stage, {camera: endpoints[camera] for camera in "cd"})
    wait_for(lambda: sorted(tiles(browser)) == list("abcd"), 15, "tiles for the cameras that came later")
    wait_for(frames_grow(browser, list("abcd"), 3), 15, "every one of four tiles showing frames")
    assert js(browser, "window.notReloaded") is True
    assert len(browser.find_elements("css selector", ".tile .tile-demo")) == 4
    assert all(e.is_displayed() for e in browser.find_elements("css selector", ".tile .tile-demo")), "DEMO on each"
    assert all(rect(browser, c)["bottom"] <= js(browser, "innerHeight") for c in "abcd"), "four tiles fit the screen"
    wait_for(lambda: viewers(ports.http) == dict.fromkeys("abcd", 1), 5, "the gateway sending each camera to the page")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "grid-four.png"))

    # A phone: one column, so c and d are below the screen; the gateway stops sending them.
    browser.set_window_size(480, 800)
    browser.execute_script("window.scrollTo(0, 0)")
    wait_for(lambda: all(rect(browser, c)["top"] > js(browser, "innerHeight") for c in "cd"), 5,
             "c and d laid out below the screen")
    wait_for(lambda: viewers(ports.http) == on_screen(browser), 5, "the gateway sending the tiles on screen only")
    assert on_screen(browser)["a"] == 1 and on_screen(browser)["c"] == on_screen(browser)["d"] == 0
    paused = {camera: tiles(browser)[camera]["frames"] for camera in "cd"}
    wait_for(frames_grow(browser, ["a"], 5), 5, "a playing on")
    assert {camera: tiles(browser)[camera]["frames"] for camera in "cd"} == paused, "paused tiles got frames"
    assert not tiles(browser)["c"]["playing"] and tiles(browser)["a"]["playing"]

    browser.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
    wait_for(lambda: rect(browser, "a")["bottom"] < 0, 5, "a scrolled above the screen")
    wait_for(lambda: viewers(ports.http) == on_screen(browser), 5, "the gateway sending the tiles on screen only")
    assert on_screen(browser)["a"] == 0 and on_screen(browser)["d"] == 1
    wait_for(frames_grow(browser, ["d"], 3), 5, "d showing frames once scrolled to")

    # A hidden tab (another tab in front): no camera's frames at all, though the page stays connected.
    hidden_before = hidden_frames(browser)
    page = browser.current_window_handle
    browser.switch_to.new_window("tab")
    wait_for(lambda: set(viewers(ports.http).values()) == {0}, 5, "every tile paused at the gateway")
    assert status(ports.http)["viewers"] == 1, "the page's WebSocket stays open while hidden"
    time.sleep(1.0)
    browser.close()
    browser.switch_to.window(page)
    wait_for(frames_grow(browser, ["d"], 3), 10, "frames again once the tab is visible")
    assert hidden_frames(browser) - hidden_before <= 2, "frames came to the hidden tab"

    # A tile opens its camera's page: its picture big, the gateway sending it alone.
    browser.set_window_size(1280, 900)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.find_element("css selector", '.tile[data-camera="c"]').click()
    wait_for(lambda: page_state(browser)["view"] == "live" and page_state(browser)["camera"] == "c", 5,
             "the page of camera c")
    assert js(browser, "location.search") == "?camera=c" and js(browser, "window.notReloaded") is True
    frames = page_state(browser)["frames"]
    wait_for(lambda: page_state(browser)["frames"] >= frames + 5, 10, "c's live view showing frames")
    assert js(browser, "['naturalWidth', 'naturalHeight'].map((k) => document.querySelector('#live img')[k])") \
        == [320, 240]
    assert displayed(browser, "demo-badge") and displayed(browser, "all-cameras")
    assert browser.find_element("id", "camera-name").text == "c"
    assert js(browser, "document.getElementById('stream-link').getAttribute('href')") == "/stream.mjpg?camera=c"
    wait_for(lambda: viewers(ports.http) == {"a": 0, "b": 0, "c": 1, "d": 0}, 5, "only c sent to the camera page")
    browser.save_screenshot(str(ARTIFACTS / "camera-page.png"))

    browser.find_element("id", "all-cameras").click()
    wait_for(lambda: page_state(browser)["view"] == "grid", 5, "the grid again")
    wait_for(frames_grow(browser, list("abcd"), 2), 10, "every tile playing again")


def test_recordings_of_every_camera_arrive_live_and_filter_by_camera(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    endpoints = {camera: f"tcp://127.0.0.1:{free_port()}" for camera in "ab"}
    frames = {"CAMSERVER_FRAMES": ",".join(endpoints.values())}
    start_stage("recorder", "--pre-seconds", "1", "--post-seconds", "1", **frames)
    start_stage("detector", **frames)
    start_stage("gateway", **frames)
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    base = f"http://127.0.0.1:{ports.http}"
    browser.get(f"{base}/?camera=b#recordings")
    wait_for(lambda: displayed(browser, "empty-recordings"), 10, "b's empty list before b exists")
    assert browser.find_element("id", "empty-recordings").text.startswith("No recordings of b yet")
    browser.execute_script("window.notReloaded = true")

    # The demo visitors walk through 2.3-7.4 s after the captures start; each recording is saved ~3 s later.
    start_cameras(start_stage, endpoints, fps=8)
    library = Library(ports.recordings)

    def saved(camera: str) -> list[str]:
        return sorted((r["name"] for r in library.recordings() if r["camera"] == camera), reverse=True)

    wait_for(lambda: saved("a") and saved("b") and listed(browser) == saved("b"), 25,
             "b's recording in b's open list, a's saved too")
    assert js(browser, "window.notReloaded") is True
    assert not set(listed(browser)) & set(saved("a")), "a's recording in b's list"
    select = Select(browser.find_element("id", "camera-filter"))
    assert [o.text for o in select.options] == ["All cameras", "a", "b"]
    assert select.first_selected_option.text == "b"

    select.select_by_visible_text("All cameras")
    everything = sorted(saved("a") + saved("b"), reverse=True)
    wait_for(lambda: listed(browser) == everything, 5, "every camera's recordings")
    assert js(browser, "location.pathname + location.search + location.hash") == "/#recordings"
    card = browser.find_element("css selector", f'#recordings-list [data-name="{saved("a")[0]}"]')
    assert "a" in card.find_element("css selector", ".rec-meta").text.split(" · ")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "recordings-all-cameras.png"))

    Select(browser.find_element("id", "camera-filter")).select_by_visible_text("a")
    wait_for(lambda: listed(browser) == saved("a"), 5, "a's recordings only")
    assert js(browser, "location.search + location.hash") == "?camera=a#recordings"
    browser.find_element("css selector", f'[data-name="{saved("a")[0]}"] button').click()
    wait_for(lambda: page_state(browser)["player"] == saved("a")[0], 5, "the player")
    assert browser.find_element("id", "player-download").get_attribute("href").endswith(
        f"/recordings/{saved('a')[0]}.mp4?camera=a")
    browser.find_element("id", "player-close").click()

    # The Live tab of a camera's page is that camera's live view; "All cameras" is the grid of both.
    browser.find_element("id", "tab-live").click()
    wait_for(lambda: page_state(browser)["camera"] == "a" and page_state(browser)["view"] == "live", 5,
             "a's live view")
    shown = page_state(browser)["frames"]
    wait_for(lambda: page_state(browser)["frames"] > shown + 3, 10, "a's frames")
    browser.find_element("id", "all-cameras").click()
    wait_for(lambda: sorted(tiles(browser)) == ["a", "b"], 5, "the grid")
    wait_for(frames_grow(browser, ["a", "b"], 3), 10, "both tiles showing frames")
    assert js(browser, "window.notReloaded") is True
