"""The page's H.264 live view in a real headless Chromium: capture, encoder and gateway as processes.

What a user sees: the camera page plays the camera as H.264 video (MSE over /api/ws), the video
advances and its picture changes, the page says "H.264" and the bitrate, at a phone's size too;
without the encoder the picture falls back to the JPEG push within a few seconds; the toggle forces
JPEG and is remembered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from selenium import webdriver

from tests.support.browser import ARTIFACTS, page_state, picture_state, video_frame_pixels
from tests.support.ports import Ports, free_port
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening, gateway_up


def start_pipeline(start_stage: Callable[..., Stage], ports: Ports, encoder: bool = True) -> None:
    start_stage("gateway")
    if encoder:
        start_stage("encoder")
    start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")


def plays_h264(browser: webdriver.Chrome, seconds: float = 3.0) -> None:
    """The live picture is in H.264 mode and its video advances: currentTime, decoded frames, the picture."""
    before = picture_state(browser)
    pixels_before = video_frame_pixels(browser)
    time.sleep(seconds)
    after = picture_state(browser)
    pixels_after = video_frame_pixels(browser)
    assert after["mode"] == "h264" and after["videoShown"] and not after["imgShown"], after
    assert after["currentTime"] > before["currentTime"] + seconds / 3, (before, after)
    assert after["decodedFrames"] > before["decodedFrames"] + 5, (before, after)
    assert (after["width"], after["height"]) == (640, 480), after
    assert pixels_before and pixels_after and len(pixels_before) == len(pixels_after)
    changed = sum(abs(a - b) > 8 for a, b in zip(pixels_before, pixels_after, strict=True))
    assert changed > 20, f"the video's picture did not change ({changed} pixels)"
    assert after["label"] == "H.264", after
    assert after["bitrate"] > 10_000, after  # bit/s actually received over the last seconds
    assert browser.find_element("id", "bitrate").text.endswith("kbit/s")
    assert page_state(browser)["state"] == "live"


def test_the_camera_page_plays_h264_on_a_desktop_and_a_phone(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_pipeline(start_stage, ports)
    started = time.monotonic()
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: picture_state(browser)["decodedFrames"] > 0, 10, "the first H.264 frame decoded")
    first_picture_ms = (time.monotonic() - started) * 1000
    print(f"first decoded H.264 frame {first_picture_ms:.0f} ms after the page was asked for")
    assert picture_state(browser)["mode"] == "h264"
    plays_h264(browser)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "live-h264.png"))

    browser.set_window_size(390, 844)
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: picture_state(browser)["decodedFrames"] > 5, 10, "H.264 frames on a phone")
    assert browser.execute_script("return innerWidth") <= 390
    plays_h264(browser)
    browser.save_screenshot(str(ARTIFACTS / "live-h264-phone.png"))


def test_without_the_encoder_the_picture_falls_back_to_jpeg(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_pipeline(start_stage, ports, encoder=False)
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: picture_state(browser)["mode"] is not None, 10, "the picture to start")
    started = time.monotonic()
    wait_for(lambda: picture_state(browser)["mode"] == "jpeg", 5, "the fallback to JPEG")
    assert time.monotonic() - started < 4.5
    frames = picture_state(browser)["frames"]
    wait_for(lambda: picture_state(browser)["frames"] > frames + 5, 10, "JPEG frames after the fallback")
    state = picture_state(browser)
    assert state["imgShown"] and not state["videoShown"], state
    wait_for(lambda: picture_state(browser)["label"] == "JPEG", 2, "the label to say JPEG")
    assert page_state(browser)["lastSeq"] is not None and page_state(browser)["state"] == "live"


def test_the_toggle_forces_jpeg_and_is_remembered(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_pipeline(start_stage, ports)
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: picture_state(browser)["decodedFrames"] > 3, 10, "H.264 frames")
    toggle = browser.find_element("id", "mode-toggle")
    assert toggle.text == "Use JPEG"
    toggle.click()
    wait_for(lambda: picture_state(browser)["mode"] == "jpeg", 3, "JPEG once the toggle is pressed")
    frames = picture_state(browser)["frames"]
    wait_for(lambda: picture_state(browser)["frames"] > frames + 5, 10, "JPEG frames")
    wait_for(lambda: picture_state(browser)["label"] == "JPEG", 2, "the label to say JPEG")
    assert toggle.text == "Use H.264"

    browser.refresh()  # remembered: the page comes back in JPEG, and stays there
    wait_for(lambda: picture_state(browser)["frames"] > 5, 10, "JPEG frames after a reload")
    assert picture_state(browser)["mode"] == "jpeg"
    browser.find_element("id", "mode-toggle").click()
    wait_for(lambda: picture_state(browser)["mode"] == "h264", 3, "H.264 again")
    wait_for(lambda: picture_state(browser)["decodedFrames"] > 3, 10, "H.264 frames again")
    plays_h264(browser)


def test_grid_tiles_play_h264_and_their_label_switches_to_jpeg(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    endpoints = {camera: f"tcp://127.0.0.1:{free_port()}" for camera in "ab"}
    start_stage("gateway", "--frames", ",".join(endpoints.values()))
    start_stage("encoder", "--frames", ",".join(endpoints.values()))
    for seed, (camera, endpoint) in enumerate(endpoints.items()):
        start_stage("capture", "--source", "demo", "--camera", camera, "--frames", endpoint,
                    "--width", "320", "--height", "240", "--fps", "8", "--seed", str(seed))
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    browser.get(f"http://127.0.0.1:{ports.http}/")
    tile = lambda camera: picture_state(browser, f'.tile[data-camera="{camera}"] camera-picture')  # noqa: E731
    label = lambda camera: browser.find_element("css selector", f'.tile[data-camera="{camera}"] .tile-mode').text  # noqa: E731
    wait_for(lambda: all((tile(c) or {}).get("decodedFrames", 0) > 3 for c in "ab"), 15, "H.264 in both tiles")
    assert all(tile(c)["mode"] == "h264" and tile(c)["videoShown"] for c in "ab")
    wait_for(lambda: all(label(c).startswith("H.264 ") and label(c).endswith(" kbit/s") for c in "ab"), 3,
             "each tile to say H.264 and its bitrate")

    browser.find_element("css selector", '.tile[data-camera="a"] .tile-mode').click()
    wait_for(lambda: all(tile(c)["mode"] == "jpeg" for c in "ab"), 3, "JPEG in both tiles")
    assert page_state(browser)["view"] == "grid", "the label's click opened the camera's page"
    frames = {c: tile(c)["frames"] for c in "ab"}
    wait_for(lambda: all(tile(c)["frames"] > frames[c] + 3 for c in "ab"), 10, "JPEG frames in both tiles")
    wait_for(lambda: all(label(c).startswith("JPEG ") for c in "ab"), 3, "each tile to say JPEG")
