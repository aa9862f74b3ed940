"""Four demo cameras from one config file, through the real processes it asks for, and the page.

The config file is written on free loopback ports; exactly the processes ``pipeline.procs`` lists
for it run (one capture per camera, one detector, recorder, gateway and logger). What a user sees:
every camera's frames at the gateway at its own size and in its own tile of the page in Chromium,
and every camera's visit recorded as its own mp4.
"""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver

from tests.support.browser import page_state
from tests.support.configs import config_text
from tests.support.ports import free_port
from tests.support.stages import RunConfig
from tests.support.waiting import wait_for
from tests.support.web import assert_one_recording_each, snapshot_shape


def test_four_demo_cameras_stream_and_record_each_on_its_own(tmp_path: Path, run_config: RunConfig,
                                                              browser: webdriver.Chrome) -> None:
    port, recordings = free_port(), tmp_path / "recordings"
    sizes = {"porch": (320, 240), "yard": (256, 192), "shed": (320, 180), "drive": (224, 168)}
    stages = run_config(config_text({camera: f'source = "demo"\nseed = {i}\nwidth = {w}\nheight = {h}\nfps = 8'
                                     for i, (camera, (w, h)) in enumerate(sizes.items())}, recordings, port))
    assert [s.name for s in stages] == ["capture-porch", "capture-yard", "capture-shed", "capture-drive", "detector",
                                        "recorder", "gateway", "logger", "encoder"]
    for camera, (w, h) in sizes.items():
        wait_for(lambda c=camera, w=w, h=h: snapshot_shape(port, c) == (h, w, 3), 20, f"{camera}'s frames")
    browser.get(f"http://127.0.0.1:{port}/")
    wait_for(lambda: {camera: tile["frames"] >= 3 for camera, tile in page_state(browser)["tiles"].items()}
             == dict.fromkeys(sizes, True), 20, "the page's grid showing frames of all four cameras")
    assert_one_recording_each(port, list(sizes), recordings, 25)
    logger = next(s for s in stages if s.name == "logger")
    for camera in sizes:
        assert f"{camera} motion_start seq=" in logger.output() and f"{camera} recording_saved" in logger.output()
    assert all(s.proc.poll() is None for s in stages), [s.output() for s in stages if s.proc.poll() is not None]
