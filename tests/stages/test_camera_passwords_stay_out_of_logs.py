"""A camera URL's password never reaches a log: not at start, not on reconnects, not in a bad-value error."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.ports import free_port
from tests.support.stages import REPO, Stage, clean_env
from tests.support.waiting import wait_for

RETRIES = 2


def secret() -> str:
    """A password found nowhere else, so finding it in the output can only be a leak."""
    return f"pw{uuid.uuid4().hex}"


class RefusesPassword(BaseHTTPRequestHandler):
    """A camera answering every request 401, the common case of a wrong password: FFmpeg reports it itself."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="camera"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_camera() -> Iterator[int]:
    """The port of a RefusesPassword server running for this test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusesPassword)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("template", "masked", "listening"),
    [
        ("http://admin:{user_pw}@127.0.0.1:{port}/stream.mjpg", ["admin:***@127.0.0.1"], False),
        ("rtsp://admin:{user_pw}@127.0.0.1:{port}/live?user=admin&pwd={query_pw}",
         ["admin:***@127.0.0.1", "&pwd=***"], False),
        ("http://admin:{user_pw}@127.0.0.1:{port}/stream.mjpg?pwd={query_pw}", ["admin:***@127.0.0.1", "?pwd=***"],
         True),
    ],
    ids=["http-closed-port", "rtsp-closed-port", "http-401"],
)
def test_camera_url_is_logged_masked_at_start_and_on_every_retry(
    start_stage: Callable[..., Stage], request: pytest.FixtureRequest, template: str, masked: list[str],
    listening: bool,
) -> None:
    user_pw, query_pw = secret(), secret()
    port = request.getfixturevalue("refusing_camera") if listening else free_port()
    url = template.format(user_pw=user_pw, query_pw=query_pw, port=port)
    capture = start_stage("capture", "--source", url)
    wait_for(lambda: capture.output().count("trying again") >= RETRIES, 15, f"{RETRIES} reconnect warnings")
    assert capture.stop() == 0
    output = capture.output()
    assert user_pw not in output and query_pw not in output, output
    lines = output.splitlines()
    start = [line for line in lines if "publishing on" in line]
    retries = [line for line in lines if "trying again" in line]
    assert len(start) == 1 and len(retries) >= RETRIES, output
    for line in start + retries:
        assert all(part in line for part in masked), line


def test_bad_source_url_error_does_not_show_the_password() -> None:
    password = secret()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.capture", "--source", f"ftp://admin:{password}@host/x"],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=15,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert password not in done.stderr + done.stdout
    assert "ftp://admin:***@host/x" in done.stderr
