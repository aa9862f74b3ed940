"""Attacks on a real gateway process over real HTTP and WebSocket: each protection, tried as an attacker would.

Every test here fails if its protection is removed: the route sweep if one route forgets its check,
the rebinding test without the Host allow-list, the CSRF tests without the XSRF and origin checks,
the brute-force test without the rate limit.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.websocket
from tornado.routing import Rule

from pipeline import gateway
from pipeline.bus.sockets import Decoder
from pipeline.config.options import Config
from pipeline.record.library import Library
from pipeline.web import app as web_app
from pipeline.web.base import Guarded
from pipeline.web.hub import Hub
from tests.support.bus import collect
from tests.support.ports import Ports, free_port
from tests.support.recordings import prepare
from tests.support.stages import REPO, Stage, clean_env
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening

PASSWORD = "correct-horse-battery-7"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
# The only (path, method) pairs anyone may use without a password; everything else must refuse.
PUBLIC = {("/healthz", "GET"), ("/healthz", "HEAD"), ("/login", "GET"), ("/login", "POST")}
Response = tuple[int, dict[str, str], bytes]


def basic(user: str = "admin", password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None,
         source: str = "127.0.0.1", read: bool = True) -> Response:
    """One request on its own connection; ``read=False`` leaves a stream's endless body unread."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read() if read else b""
    finally:
        conn.close()


def refused(response: Response) -> bool:
    """401/403, or a redirect to the login page: nothing of the camera's is given out."""
    status, headers, _ = response
    return status in (401, 403) or (status == 302 and headers.get("location", "").startswith("/login"))


def routes() -> list[Rule]:
    """The gateway's own route table, as Tornado will dispatch on it."""
    app = web_app.make_app(Hub(), Library(Path("/nonexistent")), web_app.make_guard(Config()), 8,
                           Decoder(logging.getLogger("test")))
    return app.default_router.rules[0].target.rules


def sample_path(rule: Rule, recording: str) -> str:
    """A real path for a route; a new route that takes a parameter must get its sample here."""
    pattern = rule.matcher.regex.pattern
    if rule.matcher.regex.groups == 0:
        return rule.matcher.reverse()
    samples = {"/()$": "", "/static/(.*)$": "app.js", "/api/recordings/([^/]+)$": recording,
               "/recordings/([^/]+)$": f"{recording}.mp4"}
    assert pattern in samples, f"add a sample path for the new route {pattern}"
    return rule.matcher.reverse(samples[pattern])


@pytest.fixture
def recording(ports: Ports) -> str:
    return prepare(ports, [1_790_000_000.0])[0]


@pytest.fixture
def secured(start_stage: Callable[..., Stage], ports: Ports, recording: str) -> Stage:
    """A gateway with a password, a recording to protect and a camera."""
    stage = start_stage("gateway", CAMSERVER_PASSWORD=PASSWORD)
    start_stage("capture", "--source", "demo")
    wait_for(gateway_listening(ports.http), 15, "the gateway")
    return stage


def test_only_the_allow_list_answers_without_credentials_for_every_route_and_method(
        secured: Stage, ports: Ports, recording: str) -> None:
    table = routes()
    for rule in table:
        assert issubclass(rule.target, Guarded), f"{rule.matcher.regex.pattern} is not built on Guarded"
    assert {rule.target.__name__ for rule in table if rule.target.public} == {"Health", "Login"}
    paths = [sample_path(rule, recording) for rule in table]
    assert {"/", "/webcam", "/api/recordings", f"/api/recordings/{recording}", "/healthz", "/login",
            f"/recordings/{recording}.mp4", "/static/app.js", "/metrics"} <= set(paths)
    public_paths = {path for path, _ in PUBLIC}
    for path in [*paths, "/no/such/route"]:
        authorised = call(ports.http, "GET", path, basic(), read=False)
        assert not refused(authorised), f"GET {path} with the password was refused: the sweep's path is not real"
        for method in METHODS:
            if (path, method) in PUBLIC:
                continue
            response = call(ports.http, method, path, body="" if method in ("POST", "PUT", "PATCH") else None)
            assert refused(response) or (path in public_paths and response[0] == 405), \
                f"{method} {path} answered {response[0]} without credentials"
    assert call(ports.http, "GET", "/static/../gateway.py")[0] == 401
    assert call(ports.http, "GET", "/healthz")[0] in (200, 503)
    assert call(ports.http, "GET", "/login")[0] == 200
    assert PASSWORD not in secured.output()


def test_tools_get_a_basic_challenge_and_browsers_the_login_page(secured: Stage, ports: Ports, recording: str) -> None:
    status, headers, body = call(ports.http, "GET", "/snapshot.jpg")
    assert status == 401 and headers["www-authenticate"].startswith('Basic realm="camserver"')
    assert json.loads(body)["status"] == 401
    status, headers, _ = call(ports.http, "GET", "/", {"Sec-Fetch-Mode": "navigate", "Accept": "text/html"})
    assert status == 302 and headers["location"] == "/login?next=%2F"
    status, headers, _ = call(ports.http, "GET", "/api/status", {"Sec-Fetch-Mode": "cors"})
    assert status == 401 and "www-authenticate" not in headers, "the page's fetch must not pop the browser's dialog"
    wait_for(lambda: call(ports.http, "GET", "/snapshot.jpg", basic())[0] == 200, 15, "a snapshot with Basic")
    status, headers, body = call(ports.http, "GET", "/snapshot.jpg", basic())
    assert headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    for path in ("/", "/static/app.js", f"/recordings/{recording}.jpg"):
        status, headers, _ = call(ports.http, "GET", path, basic())
        assert status == 200 and headers["cache-control"] == "private, no-cache", "no private page outlives a logout"
    assert call(ports.http, "GET", "/api/status", basic(password="wrong"))[0] == 401
    assert call(ports.http, "GET", "/api/status", basic(user="root"))[0] == 401


def test_mjpeg_and_websocket_with_basic(secured: Stage, ports: Ports) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", ports.http, timeout=10)
    conn.request("GET", "/stream.mjpg", headers=basic())
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
    assert response.readline().startswith(b"--")
    conn.close()

    async def websocket(headers: dict[str, str]) -> object:
        request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{ports.http}/webcam", headers=headers)
        conn = await tornado.websocket.websocket_connect(request)
        message = await asyncio.wait_for(conn.read_message(), 10)
        conn.close()
        return message

    assert json.loads(asyncio.run(websocket(basic())))["type"] == "status"
    with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
        asyncio.run(websocket({}))
    assert caught.value.code == 401


def login(port: int, password: str = PASSWORD, source: str = "127.0.0.1") -> tuple[Response, dict[str, str]]:
    """Log in as the page's form does; returns the answer and the cookies the browser would then hold."""
    status, headers, body = call(port, "GET", "/login?next=/%23recordings", source=source)
    assert status == 200
    cookies = {"_xsrf": re.search(r"_xsrf=([^;]+)", headers["set-cookie"]).group(1)}
    token = re.search(rb'name="_xsrf" value="([^"]+)"', body).group(1).decode()
    form = f"_xsrf={token}&user=admin&password={password}&next=/%23recordings"
    headers = {**_browser(port, cookies), "Content-Type": "application/x-www-form-urlencoded"}
    response = call(port, "POST", "/login", headers, form, source=source)
    if "set-cookie" in response[1]:
        for match in re.finditer(r"(camserver_session)=([^;]+)", response[1]["set-cookie"]):
            cookies[match.group(1)] = match.group(2)
    return response, cookies


def _browser(port: int, cookies: dict[str, str], site: str = "same-origin") -> dict[str, str]:
    """The headers Chromium adds to a same-origin form POST or fetch."""
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), "Origin": f"http://127.0.0.1:{port}",
            "Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors"}


def test_login_sets_a_signed_httponly_strict_cookie_and_logout_ends_it(secured: Stage, ports: Ports) -> None:
    (status, headers, _), cookies = login(ports.http)
    assert status == 302 and headers["location"] == "/#recordings"
    set_cookie = headers["set-cookie"]
    assert "camserver_session=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert PASSWORD not in set_cookie
    session = {"Cookie": f"camserver_session={cookies['camserver_session']}"}
    assert call(ports.http, "GET", "/api/session", session)[2] == b'{"login": true, "user": "admin"}'
    value = cookies["camserver_session"]
    tampered = value[:-2] + ("0" if value[-2] != "0" else "1") + value[-1]
    assert call(ports.http, "GET", "/api/status", {"Cookie": f"camserver_session={tampered}"})[0] == 401
    assert call(ports.http, "POST", "/logout", session, "")[0] == 403, "logout needs the XSRF token too"
    status, headers, _ = call(ports.http, "POST", "/logout",
                              {**_browser(ports.http, cookies), "X-XSRFToken": cookies["_xsrf"]}, "")
    assert status == 200 and 'camserver_session=""' in headers["set-cookie"]
    assert headers["clear-site-data"] == '"cache"'


def test_csrf_delete_needs_the_token_and_the_same_origin(secured: Stage, ports: Ports, recording: str) -> None:
    _, cookies = login(ports.http)
    path = f"/api/recordings/{recording}"
    same_origin = _browser(ports.http, cookies)
    assert call(ports.http, "DELETE", path, same_origin)[0] == 403, "a DELETE without the XSRF token"
    cross_site = {**_browser(ports.http, cookies, "cross-site"), "Origin": "http://evil.example",
                  "X-XSRFToken": cookies["_xsrf"]}
    assert call(ports.http, "DELETE", path, cross_site)[0] == 403, "a cross-site DELETE, even with a stolen token"
    no_fetch_metadata = {"Cookie": same_origin["Cookie"], "Origin": "http://evil.example"}
    assert call(ports.http, "DELETE", path, no_fetch_metadata)[0] == 403, "an older browser's cross-origin DELETE"
    assert list(ports.recordings.glob(f"{recording}.*")), "the recording survived every forged request"
    status, _, body = call(ports.http, "DELETE", path, {**same_origin, "X-XSRFToken": cookies["_xsrf"]})
    assert status == 200 and json.loads(body) == {"deleted": recording}
    assert not list(ports.recordings.glob(f"{recording}.*"))


def test_login_csrf_is_refused(secured: Stage, ports: Ports) -> None:
    form = f"user=admin&password={PASSWORD}"
    forged = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
              "Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = call(ports.http, "POST", "/login", forged, form)
    assert status == 403 and "set-cookie" not in headers
    status, headers, _ = call(ports.http, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"}, form)
    assert status == 403 and "camserver_session" not in headers.get("set-cookie", ""), "a login without the token"


def test_guessing_is_slow_limited_per_address_and_logged_without_the_password(secured: Stage, ports: Ports) -> None:
    started = time.monotonic()
    for n in range(5):
        (status, _, body), _ = login(ports.http, password=f"guess-{n}")
        assert status == 401 and b"Wrong user name or password." in body
    assert time.monotonic() - started >= 5 * 0.9, "wrong passwords must be answered slowly"
    (status, headers, body), _ = login(ports.http)
    assert status == 429 and b"Too many wrong passwords" in body, "the right password is refused while blocked"
    assert 50 <= int(headers["retry-after"]) <= 60
    status, headers, _ = call(ports.http, "GET", "/api/status", basic())
    assert status == 429 and "retry-after" in headers, "Basic is under the same limit"
    (status, _, _), _ = login(ports.http, source="127.0.0.2")
    assert status == 302, "another address is not blocked"
    log = secured.output()
    assert log.count("wrong user name or password for 'admin' from 127.0.0.1") == 5
    assert "refused a login from 127.0.0.1: too many wrong passwords" in log
    assert PASSWORD not in log and "guess-" not in log


@pytest.mark.parametrize("with_password", [True, False])
def test_dns_rebinding_host_is_refused_with_and_without_password(
        start_stage: Callable[..., Stage], ports: Ports, recording: str, with_password: bool) -> None:
    env = {"CAMSERVER_PASSWORD": PASSWORD} if with_password else {}
    start_stage("gateway", "--allowed-hosts", "cam.example", **env)
    wait_for(gateway_listening(ports.http), 15, "the gateway")
    credentials = basic() if with_password else {}
    for path in ("/", "/api/recordings", f"/recordings/{recording}.mp4", "/healthz", "/login"):
        status, _, body = call(ports.http, "GET", path, {**credentials, "Host": f"evil.example:{ports.http}"})
        assert status == 403 and b"does not answer to the name" in body, path
    status, _, _ = call(ports.http, "DELETE", f"/api/recordings/{recording}",
                        {**credentials, "Host": f"evil.example:{ports.http}"})
    assert status == 403 and list(ports.recordings.glob(f"{recording}.*"))
    for host in (f"localhost:{ports.http}", f"127.0.0.1:{ports.http}", "cam.example", f"CAM.EXAMPLE:{ports.http}"):
        assert call(ports.http, "GET", "/api/recordings", {**credentials, "Host": host})[0] == 200, host


def test_websocket_refuses_foreign_origins(start_stage: Callable[..., Stage], ports: Ports) -> None:
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway")

    async def connect(origin: str) -> None:
        request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{ports.http}/webcam", headers={"Origin": origin})
        conn = await tornado.websocket.websocket_connect(request)
        conn.close()

    asyncio.run(connect(f"http://127.0.0.1:{ports.http}"))
    for origin in ("http://evil.example", f"http://127.0.0.1:{ports.http}.evil.example", "null"):
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            asyncio.run(connect(origin))
        assert caught.value.code == 403, origin


def test_live_streams_per_client_address_are_capped(start_stage: Callable[..., Stage], ports: Ports) -> None:
    start_stage("gateway", "--max-viewers-per-client", "2")
    start_stage("capture", "--source", "demo")
    wait_for(gateway_listening(ports.http), 15, "the gateway")
    wait_for(lambda: call(ports.http, "GET", "/healthz")[0] == 200, 15, "frames at the gateway")
    streams = []
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", ports.http, timeout=10)
        conn.request("GET", "/stream.mjpg")
        assert conn.getresponse().status == 200
        streams.append(conn)
    assert call(ports.http, "GET", "/stream.mjpg", read=False)[0] == 429, "a third stream from the same address"

    async def websocket() -> None:
        await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{ports.http}/webcam")

    with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
        asyncio.run(websocket())
    assert caught.value.code == 429
    other = http.client.HTTPConnection("127.0.0.1", ports.http, timeout=10, source_address=("127.0.0.2", 0))
    other.request("GET", "/stream.mjpg", headers={"Host": f"127.0.0.1:{ports.http}"})
    assert other.getresponse().status == 200, "another address still gets its streams"
    other.close()
    streams.pop().close()
    wait_for(lambda: _mjpeg_status(ports.http) == 200, 10, "a slot freed by a closed stream")
    for conn in streams:
        conn.close()


def _mjpeg_status(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/stream.mjpg")
        return conn.getresponse().status
    finally:
        conn.close()


def _gateway(ports: Ports, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.gateway", *args], cwd=REPO, capture_output=True, text=True,
                          env=clean_env(**ports.env(), **env), timeout=30)


def test_refuses_to_listen_beyond_loopback_without_a_password(ports: Ports, tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "192.168.1.20", "camera.lan"):
        done = _gateway(ports, "--host", host)
        assert done.returncode == 2, (host, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"refusing to listen on {host} without a password" in lines[0]
        assert "CAMSERVER_PASSWORD" in lines[0] and "python -m pipeline.passwd" in lines[0]
    bad_file = tmp_path / "password"
    bad_file.write_text("plain-text-password\n")
    done = _gateway(ports, "--password-file", str(bad_file))
    assert done.returncode == 2 and "--password-file" in done.stderr and "plain-text-password" not in done.stderr
    done = _gateway(ports, "--password", "", )
    assert done.returncode == 2 and "invalid --password value (hidden): must not be empty" in done.stderr
    done = _gateway(ports, "--tls-cert", str(bad_file))
    assert done.returncode == 2 and "--tls-cert and --tls-key" in done.stderr
    done = _gateway(ports, "--tls-cert", str(bad_file), "--tls-key", str(bad_file))
    assert done.returncode == 2 and "invalid --tls-cert/--tls-key" in done.stderr


def test_the_insecure_choice_is_said_at_every_start(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(host="0.0.0.0", insecure_no_auth=True)
    gateway.check(cfg)
    with caplog.at_level("INFO", "camserver.gateway"):
        web_app.announce(cfg, web_app.make_guard(cfg))
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "WITHOUT a password" in warnings[0].getMessage()


def test_password_file_and_tls(start_stage: Callable[..., Stage], ports: Ports, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate (Debian package openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    hash_file = tmp_path / "password"
    subprocess.run([sys.executable, "-m", "pipeline.passwd", "-o", str(hash_file)], input=PASSWORD + "\n", text=True,
                   cwd=REPO, check=True, capture_output=True, timeout=30)
    gateway_stage = start_stage("gateway", "--password-file", str(hash_file), "--tls-cert", str(cert),
                                "--tls-key", str(key))
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False

    def https(headers: dict[str, str]) -> int | None:
        conn = http.client.HTTPSConnection("127.0.0.1", ports.http, timeout=10, context=context)
        try:
            conn.request("GET", "/api/status", headers=headers)
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    wait_for(lambda: https({}) == 401, 15, "the gateway over HTTPS")
    assert https(basic()) == 200
    with pytest.raises((http.client.HTTPException, OSError)):
        call(ports.http, "GET", "/healthz")
    assert "live view on https://" in gateway_stage.output()
    assert "login required: user 'admin', password from --password-file" in gateway_stage.output()


def test_ffmpeg_relays_a_password_protected_stream_with_basic(
        secured: Stage, start_stage: Callable[..., Stage], ports: Ports) -> None:
    """FFmpeg (inside OpenCV) answers the Basic challenge from the URL's user:password, as VLC does."""
    wait_for(lambda: call(ports.http, "GET", "/healthz")[0] == 200, 15, "frames at the gateway")
    relay_frames = f"tcp://127.0.0.1:{free_port()}"
    url = f"http://admin:{PASSWORD}@127.0.0.1:{ports.http}/stream.mjpg"
    relay = start_stage("capture", "--source", url, "--camera", "relay", CAMSERVER_FRAMES=relay_frames)
    frames = collect(relay_frames, lambda got: len(got) >= 5, 20)
    assert len(frames) >= 5 and all(f.camera == "relay" for f in frames), relay.output()
    assert PASSWORD not in relay.output() and "admin:***@" in relay.output()
