"""Headless Chromium driving the gateway's pages, and what a test reads of the open page.

Debian's chromium and chromium-driver only (never a downloaded browser), a fresh profile each time.
What the page shows is read from its elements (``page_state``), as a person would see it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.stages import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "test-artifacts"  # screenshots, for a person to look at after a run


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


def js(driver: webdriver.Chrome, expr: str) -> object:
    return driver.execute_script(f"return {expr}")


def video(driver: webdriver.Chrome, prop: str) -> object:
    """A property of the player's <video>."""
    return js(driver, f"document.getElementById('player-video').{prop}")


def displayed(driver: webdriver.Chrome, element_id: str) -> bool:
    found = driver.find_elements("id", element_id)
    return bool(found) and found[0].is_displayed()


def listed(driver: webdriver.Chrome) -> list[str]:
    """The names of the recordings the page lists."""
    return page_state(driver)["recordings"]


def alert_showing(driver: webdriver.Chrome) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018  (raises until the confirm() is showing)
    except Exception:  # selenium's NoAlertPresentException
        return False
    return True


# A <camera-picture>'s own state (the live view's by default) and the mode label the page shows next to it.
PICTURE_STATE = """
const picture = arguments[0] ? document.querySelector(arguments[0]) : document.getElementById('live');
if (!picture) return null;
const label = document.getElementById('live-mode');
return {
  mode: picture.mode ?? null,
  playing: picture.playing,
  frames: picture.frames ?? 0,
  bitrate: picture.bitrate ?? 0,
  currentTime: picture.currentTime ?? 0,
  decodedFrames: picture.decodedFrames ?? 0,
  width: picture.naturalWidth,
  height: picture.naturalHeight,
  label: label ? label.textContent : null,
  videoShown: !!picture.querySelector('video')?.checkVisibility?.(),
  imgShown: !!picture.querySelector('img')?.checkVisibility?.(),
};
"""


def picture_state(driver: webdriver.Chrome, selector: str = "") -> dict:
    """A <camera-picture>'s mode ("h264" or "jpeg"), frames shown, bitrate (bit/s), the video's currentTime and
    decoded frames, its picture's size, which of its <video> and <img> is shown, and the page's mode label."""
    return driver.execute_script(PICTURE_STATE, selector)


def video_frame_pixels(driver: webdriver.Chrome, selector: str = "#live") -> list[int] | None:
    """A grey copy (160x120) of the frame a <camera-picture>'s <video> shows, drawn through a canvas."""
    return driver.execute_script(
        "const v = document.querySelector(arguments[0] + ' video');"
        "if (!v || !v.videoWidth) return null;"
        "const c = document.createElement('canvas'); c.width = 160; c.height = 120;"
        "const g = c.getContext('2d'); g.drawImage(v, 0, 0, 160, 120);"
        "const d = g.getImageData(0, 0, 160, 120).data; const out = [];"
        "for (let i = 0; i < d.length; i += 4) out.push((d[i] + d[i + 1] + d[i + 2]) / 3 | 0);"
        "return out;", selector)
