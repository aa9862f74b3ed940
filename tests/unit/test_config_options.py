"""Configuration: flags beat the environment, which beats defaults; bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.loading import load
from pipeline.config.options import Config, ConfigError
from pipeline.config.parsers import Mask, Source

ALL = ("camera", "source", "fps", "width", "height", "quality", "loop", "seed", "frames", "events", "host",
       "port", "log_level", "threshold", "pixel_threshold", "min_area", "lightswitch_percent", "stable_frames",
       "min_motion_frames", "mask", "json", "frame_stats", "log_time", "max_recording_seconds")


def test_defaults() -> None:
    cfg = load("test", ALL, "", argv=[], environ={})
    assert cfg == Config()
    assert cfg.source == Source("auto")
    assert cfg.fps is None, "None: capture uses a file's own rate, else DEFAULT_FPS"
    assert (cfg.width, cfg.height) == (None, None), "None: the source's own size (640x480 asked of a webcam)"
    assert (cfg.quality, cfg.port) == (80, 8100)
    assert cfg.frames == ("tcp://127.0.0.1:5555",) and cfg.events == ("tcp://127.0.0.1:5556",)


def test_environment_then_flags() -> None:
    env = {"CAMSERVER_FPS": "25", "CAMSERVER_PORT": "9000", "CAMSERVER_CAMERA": "garden", "CAMSERVER_LOOP": "yes"}
    cfg = load("test", ALL, "", argv=["--fps", "5"], environ=env)
    assert cfg.fps == 5.0
    assert cfg.port == 9000
    assert cfg.camera == "garden"
    assert cfg.loop is True
    assert load("test", ALL, "", argv=["--no-loop"], environ=env).loop is False


def test_gateway_positional_port() -> None:
    assert load("gateway", ("port",), "", argv=["8000"], environ={}).port == 8000
    assert load("gateway", ("port",), "", argv=["8000"], environ={"CAMSERVER_PORT": "9000"}).port == 8000
    with pytest.raises(ConfigError, match="give the port once"):
        load("gateway", ("port",), "", argv=["8000", "--port", "8001"], environ={})


def test_sources(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    parse = lambda text: load("t", ("source",), "", argv=["--source", text], environ={}).source  # noqa: E731
    assert parse("demo") == Source("demo")
    assert parse("0") == Source("webcam", 0)
    assert parse("/dev/null") == Source("webcam", "/dev/null"), "a device path (here the one sure to exist)"
    assert parse("rtsp://cam.local/stream") == Source("url", "rtsp://cam.local/stream")
    assert parse("http://other:8100/stream.mjpg") == Source("url", "http://other:8100/stream.mjpg")
    assert parse(str(video)) == Source("file", str(video))


def test_masks(tmp_path: Path) -> None:
    image = tmp_path / "mask.png"
    image.write_bytes(b"")
    parse = lambda text: load("t", ("mask",), "", argv=["--mask", text], environ={}).mask  # noqa: E731
    assert parse("0,0,640,100; 10,200,50,60;") == Mask(rects=((0, 0, 640, 100), (10, 200, 50, 60)))
    assert parse(str(image)) == Mask(image=str(image))
    assert load("t", ("mask",), "", argv=[], environ={}).mask == Mask()


def test_several_endpoints() -> None:
    cfg = load("t", ("frames",), "", argv=["--frames", "tcp://127.0.0.1:5555, ipc:///tmp/cam1"], environ={})
    assert cfg.frames == ("tcp://127.0.0.1:5555", "ipc:///tmp/cam1")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--fps", "fast"], {}, "invalid --fps value 'fast': expected a number"),
        ([], {"CAMSERVER_FPS": "0"}, "invalid CAMSERVER_FPS value '0': must be between 0.1 and 120"),
        (["--width", "641"], {}, "invalid --width value '641': must be even"),
        (["--quality", "101"], {}, "invalid --quality value '101'"),
        (["--port", "70000"], {}, "invalid --port value '70000'"),
        ([], {"CAMSERVER_PORT": "http"}, "invalid CAMSERVER_PORT value 'http': expected an integer"),
        (["--camera", "front door"], {}, "invalid --camera value 'front door': bad camera id"),
        (["--frames", "localhost:5555"], {}, "invalid --frames value 'localhost:5555'"),
        (["--events", "tcp://127.0.0.1"], {}, "invalid --events value 'tcp://127.0.0.1'"),
        (["--source", "/no/such/file.mp4"], {}, "invalid --source value '/no/such/file.mp4': no such video file"),
        (["--source", "ftp://x/y"], {}, "invalid --source value 'ftp://x/y': URLs must be"),
        (["--source", "/dev/video97"], {}, "invalid --source value '/dev/video97': no such video device /dev/video97"),
        (["--source", "/dev/"], {}, "invalid --source value '/dev/': /dev/ is not a video device"),
        ([], {"CAMSERVER_LOOP": "maybe"}, "invalid CAMSERVER_LOOP value 'maybe'"),
        (["--log-level", "loud"], {}, "invalid --log-level value 'loud'"),
        (["--threshold", "0"], {}, "invalid --threshold value '0': must be between"),
        ([], {"CAMSERVER_STABLE_FRAMES": "0"}, "invalid CAMSERVER_STABLE_FRAMES value '0'"),
        (["--pixel-threshold", "300"], {}, "invalid --pixel-threshold value '300'"),
        (["--mask", "1,2,3"], {}, "invalid --mask value '1,2,3': '1,2,3' is not a rectangle"),
        (["--mask", "0,0,0,10"], {}, "positive width and height"),
        (["--mask", "/no/such/mask.png"], {}, "invalid --mask value '/no/such/mask.png': expected rectangles"),
        (["--max-recording-seconds", "5"], {}, "invalid --max-recording-seconds value '5': must be between 10"),
        ([], {"CAMSERVER_LOG_TIME": "sometimes"}, "invalid CAMSERVER_LOG_TIME value 'sometimes'"),
    ],
)
def test_bad_values_name_the_option_and_value(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load("test", ALL, "", argv=argv, environ=env)
    assert message in str(caught.value)
