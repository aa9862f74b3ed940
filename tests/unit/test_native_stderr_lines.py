"""A line a native library (FFmpeg, OpenCV) prints to file descriptor 2, made one of the stage's own:
it names its component and masks the passwords in its URLs.
"""

from __future__ import annotations

from pipeline.stage.native_stderr import native_line


def test_a_native_line_names_its_component_and_masks_urls() -> None:
    assert native_line(b"[tcp @ 0x7f1678005480] Connection to tcp://127.0.0.1:1 failed: Connection refused\n") == (
        "tcp: Connection to tcp://127.0.0.1:1 failed: Connection refused")
    assert native_line(b"[http @ 0x55] Opening 'http://cam:pw@10.0.0.2/x.mjpg' for reading\n") == (
        "http: Opening 'http://cam:***@10.0.0.2/x.mjpg' for reading")
    assert native_line(b"\xff\xfe odd bytes\n") == "\ufffd\ufffd odd bytes"
