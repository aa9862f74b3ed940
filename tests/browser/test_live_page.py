"""The live page in a real headless Chromium against the real pipeline on the demo scene."""

from __future__ import annotations

import signal
from collections.abc import Callable

import cv2
from selenium import webdriver

from pipeline.record.library import Library, recording_name
from pipeline.record.mp4 import Mp4Writer
from pipeline.video.demo import DemoScene
from tests.support.browser import ARTIFACTS, page_state
from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening, gateway_up


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

