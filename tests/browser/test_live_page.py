"""The live page in a real headless Chromium against the real pipeline on the demo scene."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator

import cv2
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from pipeline.record.library import Library, recording_name
from pipeline.record.mp4 import Mp4Writer
from pipeline.video.demo import DemoScene
from tests.conftest import REPO, Ports, Stage, wait_for
from tests.test_live import gateway_listening, gateway_up

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "test-artifacts"


def chromium(*extra_flags: str) -> Iterator[webdriver.Chrome]:
    """A fresh headless Debian Chromium (never a downloaded one), with extra command-line flags."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("Debian's chromium and chromium-driver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,900", f"--user-data-dir={profile}", *extra_flags):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    yield from chromium()


# What the page shows, read from its elements: each module keeps its own state, and no global holds it.
PAGE_STATE = """
const $ = (id) => document.getElementById(id);
const live = $('live');
if (!live) return {};  // another page: the login page, an error
const canvas = $('boxes');
const player = $('player');
// The motion boxes as drawn: how many pixels of the overlay are painted.
let painted = 0;
if (!canvas.hidden && canvas.width && canvas.height) {
  const alpha = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < alpha.length; i += 4) if (alpha[i]) painted += 1;
}
const name = $('camera-name').textContent;
return {
  view: document.body.dataset.view ?? null,
  state: document.body.dataset.state,
  camera: name === '\u2014' ? null : name,
  frames: live.frames ?? 0,
  lastSeq: live.frame?.meta?.seq ?? null,
  demo: !$('demo-badge').hidden,
  motion: $('motion-badge').dataset.motion,
  boxes: painted,
  tiles: Object.fromEntries([...document.querySelectorAll('#grid .tile')].map((tile) => {
    const picture = tile.querySelector('camera-picture');
    return [tile.dataset.camera, { frames: picture.frames, playing: picture.playing }];
  })),
  recordings: [...document.querySelectorAll('#recordings-list > li')].map((li) => li.dataset.name),
  player: player.open ? player.dataset.recording : null,
};
"""


def page_state(driver: webdriver.Chrome) -> dict:
    """The live view (state, camera, its <camera-picture>'s frames and the seq of the one on screen, DEMO,
    the motion badge, boxes painted), the grid's tiles (each picture's frames and whether it plays), the
    recordings listed and the recording in the open player."""
    return driver.execute_script(PAGE_STATE)


def scripts_ran(driver: webdriver.Chrome) -> bool:
    """Whether the live page's scripts ran: app.js marks the view it shows, camera-picture.js defines its element."""
    return driver.execute_script("return document.body.dataset.view !== undefined "
                                 "|| customElements.get('camera-picture') !== undefined")


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
    natural = browser.execute_script("const i = document.querySelector('#live img'); "
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
        return state["motion"] == "recording" and state["boxes"] > 0

    wait_for(recording_with_boxes, 20, "Recording and motion boxes while the visitor walks through")
    badge = browser.find_element("id", "motion-badge")
    assert badge.get_attribute("data-motion") == "recording" and "Recording" in badge.text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "live-view-motion.png"))
    wait_for(lambda: page_state(browser)["motion"] == "idle", 20, "the badge to return to Idle after the visit")
    assert page_state(browser)["boxes"] == 0, "boxes left drawn"


def test_a_recording_plays_in_the_browser(browser: webdriver.Chrome, start_stage: Callable[..., Stage],
                                          ports: Ports) -> None:
    library = Library(ports.recordings)
    ports.recordings.mkdir()
    name = recording_name("cam0", 1_790_000_000.0)
    writer = Mp4Writer(library.part_path(name), 640, 480)
    scene = DemoScene(640, 480, seed=1)
    for i in range(40):
        ts = 1_790_000_000.0 + i / 10
        writer.write(cv2.imencode(".jpg", scene.render(3 + i / 10, ts))[1].tobytes(), ts)
    writer.close()
    library.publish(name, writer.path, None, {"camera": "cam0", "duration": writer.duration})
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    browser.get(f"http://127.0.0.1:{ports.http}/")
    browser.execute_script(
        "const v = document.createElement('video'); v.id = 'probe-video'; v.muted = true;"
        f"v.src = '/recordings/{name}.mp4'; document.body.appendChild(v); v.play();")
    video = lambda expr: browser.execute_script(f"return document.getElementById('probe-video').{expr}")  # noqa: E731
    wait_for(lambda: video("readyState") >= 2 or video("error"), 15, "the video to load")
    assert video("error") is None, video("error.code")
    assert abs(video("duration") - 4.0) < 0.3
    wait_for(lambda: video("currentTime") > 0.5, 10, "playback to advance")
    assert (video("videoWidth"), video("videoHeight")) == (640, 480)

