"""The page's H.264 live view in a real headless Chromium: capture, encoder and gateway as processes.

What a user sees: the camera page plays the camera as H.264 video (MSE over /api/ws), the video
advances and its picture changes, the page says "H.264" and the bitrate, at a phone's size too;
without the encoder the picture falls back to the JPEG push within a few seconds; the toggle forces
JPEG and is remembered; a snapshot in H.264 mode is a JPEG of the video's frame at its size; a hidden tab
closes the H.264 socket and the picture plays H.264 again once the tab is visible.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import cv2
import numpy as np
from selenium import webdriver

from tests.support.browser import ARTIFACTS, js, page_state, picture_state, video_frame_pixels
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


# The picture's H.264 sockets as the page opens them (/api/ws only), and while the tab is hidden a sample
# every 250 ms (as throttled as a hidden tab's timers are) of what the picture does: a hidden tab cannot
# be read from the test without bringing it to the front.
WATCH_SOCKETS = """
window.__mse = [];
window.__hiddenSamples = [];
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(url, protocols) {
    super(url, protocols);
    if (String(url).includes('/api/ws')) window.__mse.push(this);
  }
};
window.__openMse = () => window.__mse.filter((ws) => ws.readyState <= 1).length;
setInterval(() => {
  if (!document.hidden) return;
  const live = document.getElementById('live');
  window.__hiddenSamples.push({ playing: live?.playing, open: window.__openMse(), sockets: window.__mse.length });
}, 250);
"""


def snapshot_jpeg(browser: webdriver.Chrome) -> bytes:
    """The bytes of the live picture's snapshot() Blob (read in the page as base64)."""
    encoded = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "document.getElementById('live').snapshot().then((blob) => {"
        "  if (!blob) { done(null); return; }"
        "  const reader = new FileReader();"
        "  reader.onload = () => done([blob.type, reader.result.split(',')[1]]);"
        "  reader.readAsDataURL(blob); }).catch((err) => done(String(err)));")
    assert isinstance(encoded, list), encoded
    kind, data = encoded
    assert kind == "image/jpeg", kind
    return base64.b64decode(data)


def test_a_snapshot_in_h264_mode_is_a_jpeg_of_the_video(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_pipeline(start_stage, ports)
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: picture_state(browser)["decodedFrames"] > 5, 15, "H.264 frames")
    assert picture_state(browser)["mode"] == "h264"
    wait_for(lambda: browser.find_element("id", "snapshot-button").is_enabled(), 5, "the snapshot button enabled")
    data = snapshot_jpeg(browser)
    assert data[:3] == b"\xff\xd8\xff", data[:8]
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (480, 640, 3), None if image is None else image.shape
    assert float(image.std()) > 10, "the snapshot is a blank picture"
    # The video's frame, not something else: the snapshot looks like what the <video> shows.
    shown = np.array(video_frame_pixels(browser), np.float32).reshape(120, 160)
    small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (160, 120), interpolation=cv2.INTER_AREA)
    assert float(np.abs(small.astype(np.float32) - shown).mean()) < 20
    assert picture_state(browser)["mode"] == "h264", "taking a snapshot left H.264"


def test_a_hidden_tab_closes_the_h264_socket_and_plays_again_when_visible(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_pipeline(start_stage, ports)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_SOCKETS})
    browser.get(f"http://127.0.0.1:{ports.http}/")
    wait_for(lambda: picture_state(browser)["decodedFrames"] > 5, 15, "H.264 frames")
    assert picture_state(browser)["mode"] == "h264" and js(browser, "window.__openMse()") == 1
    sockets = js(browser, "window.__mse.length")

    page = browser.current_window_handle
    browser.switch_to.new_window("tab")  # another tab in front: the page's tab is hidden
    time.sleep(2.5)
    browser.close()
    browser.switch_to.window(page)
    samples = js(browser, "window.__hiddenSamples")
    assert samples, "no sample while the tab was hidden"
    assert all(not s["playing"] and s["open"] == 0 for s in samples), samples
    assert samples[-1]["sockets"] == sockets, "a new H.264 socket opened while hidden"

    wait_for(lambda: js(browser, "window.__openMse()") == 1 and picture_state(browser)["playing"], 5,
             "a new H.264 socket once the tab is visible")
    assert js(browser, "window.__mse.length") == sockets + 1
    wait_for(lambda: picture_state(browser)["currentTime"] > 0.5, 10, "the video to advance again")
    plays_h264(browser, 2.0)

