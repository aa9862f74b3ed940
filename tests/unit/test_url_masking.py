"""Masking the passwords in a text's URLs, as every log line is masked: user info and password keys of
the query, in any case, however many URLs the text holds.
"""

from __future__ import annotations

import pytest

from pipeline.stage.redact import mask_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:p:a@ss@cam.local:554/live", "rtsp://admin:***@cam.local:554/live"),
        ("rtsp://admin@cam.local:554/live", "rtsp://admin@cam.local:554/live"),
        ("http://192.168.1.20:8080/video?resolution=640", "http://192.168.1.20:8080/video?resolution=640"),
        ("http://cam/snap.cgi?usr=admin&PWD=a1&Password=b2;token=c3&rate=5",
         "http://cam/snap.cgi?usr=admin&PWD=***&Password=***;token=***&rate=5"),
        ("rtsp://a:one@h1/x failed, trying http://b:two@h2/y?pwd=three next",
         "rtsp://a:***@h1/x failed, trying http://b:***@h2/y?pwd=*** next"),
    ],
    ids=["password-with-colon-and-at", "user-only", "no-userinfo", "query-keys-any-case", "several-urls"],
)
def test_mask_url(text: str, expected: str) -> None:
    assert mask_url(text) == expected
