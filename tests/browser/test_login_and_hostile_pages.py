"""The gateway's login and its defences against hostile web pages, in a real headless Chromium.

A password check proven with curl says nothing about what a browser does with the cookie, the
redirects and the page's own requests, nor about what another site open in the same browser can
make it do. These tests drive the real stages and a real Chromium: a person's whole session, a
DNS rebinding page, and cross-site pages that try to delete a recording or log the visitor in.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import pytest
from selenium import webdriver

from pipeline.record.library import Library, recording_name
from pipeline.record.mp4 import Mp4Writer
from pipeline.video.demo import DemoScene
from tests.support.browser import (
    ARTIFACTS,
    alert_showing,
    chromium,
    displayed,
    js,
    listed,
    page_state,
    scripts_ran,
    video,
)
from tests.support.ports import Ports, free_port
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening, gateway_up

PASSWORD = "correct horse battery staple"
USER = "admin"
SESSION_COOKIE = "camserver_session"
REBIND_HOST = "rebind.test"

# What a hostile page does with the visitor's browser; the test calls these functions in it.
ATTACKER_PAGE = """<!doctype html>
<title>Cute cat pictures</title>
<script>
  // A page on the same host but another port can read the gateway's non-HttpOnly cookies.
  window.stolenXsrf = () => decodeURIComponent((/(?:^|;\\s*)_xsrf=([^;]*)/.exec(document.cookie) || [])[1] || '');
  window.forgeForm = (action, fields) => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = action;
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement('input');
      input.name = name;
      input.value = value;
      form.append(input);
    }
    document.body.append(form);
    form.submit();
  };
  window.forgeDelete = (url) => fetch(url, {method: 'DELETE', credentials: 'include',
                                            headers: {'X-XSRFToken': window.stolenXsrf()}})
    .then((response) => response.status, (error) => error.name);
</script>
"""


def make_recording(root: Path) -> str:
    """A 4 s 640x480 recording of the demo scene with its thumbnail, as the recorder publishes one."""
    library = Library(root)
    root.mkdir(exist_ok=True)
    start = 1_790_000_000.0
    name = recording_name("cam0", start)
    writer = Mp4Writer(library.part_path(name), 640, 480)
    scene = DemoScene(640, 480, seed=1)
    jpegs = [cv2.imencode(".jpg", scene.render(3 + i / 10, start + i / 10))[1].tobytes() for i in range(40)]
    for i, jpeg in enumerate(jpegs):
        writer.write(jpeg, start + i / 10)
    writer.close()
    library.publish(name, writer.path, jpegs[20], {"camera": "cam0", "start": start, "end": start + 3.9,
                                                    "duration": writer.duration})
    return name


def files_of(root: Path, name: str) -> list[str]:
    return sorted(p.name for p in root.glob(f"{name}*"))


def fetch_status(driver: webdriver.Chrome, path: str, method: str = "GET") -> int:
    """The status a script in the open page gets, sending the XSRF cookie back as the page's api() does."""
    return driver.execute_script(
        "const token = decodeURIComponent((/(?:^|;\\s*)_xsrf=([^;]*)/.exec(document.cookie) || [])[1] || '');"
        "return fetch(arguments[0], {method: arguments[1], headers: {'X-XSRFToken': token}}).then(r => r.status)",
        path, method)


def navigation_status(driver: webdriver.Chrome) -> int:
    return js(driver, "performance.getEntriesByType('navigation')[0].responseStatus")


def path_of(driver: webdriver.Chrome) -> str:
    return urlsplit(driver.current_url).path


def sessions(driver: webdriver.Chrome) -> list[dict]:
    """Every session cookie in the browser, whatever page is open (selenium only sees the page's own)."""
    return [c for c in driver.execute_cdp_cmd("Storage.getCookies", {})["cookies"] if c["name"] == SESSION_COOKIE]


def log_in(driver: webdriver.Chrome, password: str) -> None:
    """Fill the login form as a person does and send it."""
    for field, value in (("user", USER), ("password", password)):
        box = driver.find_element("id", field)
        box.clear()
        box.send_keys(value)
    driver.find_element("id", "login-button").click()


@pytest.fixture
def rebinding_browser() -> Iterator[webdriver.Chrome]:
    """A browser in which an attacker's name resolves to this machine, as after a DNS rebinding."""
    yield from chromium(f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1")


@pytest.fixture
def attacker_port(tmp_path: Path) -> Iterator[int]:
    """A second web server on loopback serving the hostile page at /index.html."""
    site = tmp_path / "attacker"
    site.mkdir()
    (site / "index.html").write_text(ATTACKER_PAGE)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    try:
        wait_for(listening, 10, "the attacker's web server")
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def test_a_session_from_login_to_logout(browser: webdriver.Chrome, start_stage: Callable[..., Stage],
                                        ports: Ports) -> None:
    """Everything a person does behind the login works, and nothing works after logging out."""
    name = make_recording(ports.recordings)
    start_stage("gateway", "--password", PASSWORD)
    start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")
    gateway = f"http://127.0.0.1:{ports.http}"

    browser.get(f"{gateway}/")
    assert path_of(browser) == "/login" and urlsplit(browser.current_url).query == "next=%2F"
    assert browser.title == "camserver — log in"
    log_in(browser, "not the password")
    wait_for(lambda: displayed(browser, "login-error"), 10, "the wrong password's error")
    assert browser.find_element("id", "login-error").text == "Wrong user name or password."
    assert path_of(browser) == "/login" and not sessions(browser)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "login-error.png"))

    log_in(browser, PASSWORD)
    wait_for(lambda: path_of(browser) == "/", 10, "the live page after logging in")
    wait_for(lambda: page_state(browser).get("frames", 0) >= 10, 20, "the page to show 10 frames")
    assert page_state(browser)["demo"] is True and displayed(browser, "demo-badge")
    frames = page_state(browser)["frames"]
    wait_for(lambda: page_state(browser)["frames"] > frames + 5, 10, "more frames")
    wait_for(lambda: displayed(browser, "logout-button"), 5, "the Log out button")
    browser.save_screenshot(str(ARTIFACTS / "live-after-login.png"))
    browser.set_window_size(390, 844)  # a phone: the Log out button must not push the page sideways
    wait_for(lambda: js(browser, "document.documentElement.scrollWidth <= window.innerWidth"), 5,
             "no horizontal scroll on a phone with the Log out button")
    assert displayed(browser, "logout-button")
    browser.set_window_size(1280, 900)
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict", cookie

    browser.find_element("id", "tab-recordings").click()
    wait_for(lambda: listed(browser) == [name], 10, "the recording in the list")
    browser.find_element("css selector", f'[data-name="{name}"] button').click()
    wait_for(lambda: page_state(browser)["player"] == name, 5, "the player to open")
    wait_for(lambda: video(browser, "readyState") >= 2 or video(browser, "error"), 10, "the video to load")
    assert video(browser, "error") is None
    wait_for(lambda: video(browser, "currentTime") > 0.5, 10, "playback to advance")
    browser.find_element("id", "player-delete").click()
    wait_for(lambda: alert_showing(browser), 5, "the confirmation")
    browser.switch_to.alert.accept()
    wait_for(lambda: listed(browser) == [] and page_state(browser)["player"] is None, 5, "the entry to go")
    assert files_of(ports.recordings, name) == []

    browser.find_element("id", "logout-button").click()
    wait_for(lambda: path_of(browser) == "/login", 10, "the login page after logging out")
    assert not sessions(browser)
    assert fetch_status(browser, "/api/recordings") == 401
    browser.get(f"{gateway}/")
    assert path_of(browser) == "/login"
    assert js(browser, "performance.getEntriesByType('navigation')[0].redirectCount") == 1, \
        "the server itself must redirect: the page must not come from the browser's cache after logging out"


def test_dns_rebinding_page_is_refused_until_its_name_is_allowed(
    rebinding_browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports
) -> None:
    """A hostile name resolving to us must not read or delete anything, even with no password set."""
    name = make_recording(ports.recordings)
    kept = files_of(ports.recordings, name)
    gateway = start_stage("gateway")
    start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")
    url = f"http://{REBIND_HOST}:{ports.http}/"

    rebinding_browser.get(url)
    assert navigation_status(rebinding_browser) == 403
    assert "does not answer to the name" in rebinding_browser.find_element("tag name", "body").text
    assert not scripts_ran(rebinding_browser), "the live page's scripts must not have run"
    assert fetch_status(rebinding_browser, "/api/recordings") == 403
    assert fetch_status(rebinding_browser, f"/api/recordings/{name}", "DELETE") == 403
    assert files_of(ports.recordings, name) == kept

    gateway.stop()
    start_stage("gateway", "--allowed-hosts", REBIND_HOST)
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen again")
    rebinding_browser.get(url)
    assert navigation_status(rebinding_browser) == 200
    wait_for(lambda: page_state(rebinding_browser).get("frames", 0) >= 5, 20, "frames on the allowed name")
    assert fetch_status(rebinding_browser, "/api/recordings") == 200


def test_cross_site_pages_can_neither_log_in_nor_delete(
    browser: webdriver.Chrome, start_stage: Callable[..., Stage], ports: Ports, attacker_port: int
) -> None:
    """Another site (localhost:N) and another port of the same host (same-site, so SameSite cookies
    go along and it can read the XSRF cookie) both fail; only the Origin check stops the second's forms."""
    name = make_recording(ports.recordings)
    kept = files_of(ports.recordings, name)
    start_stage("gateway", "--password", PASSWORD)
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    gateway = f"http://127.0.0.1:{ports.http}"
    attackers = (f"http://localhost:{attacker_port}", f"http://127.0.0.1:{attacker_port}")

    browser.get(f"{gateway}/")  # an earlier visit: the browser holds the gateway's XSRF cookie
    assert path_of(browser) == "/login" and browser.get_cookie("_xsrf") is not None
    for attacker in attackers:
        browser.get(f"{attacker}/index.html")
        browser.execute_script("forgeForm(arguments[0], {user: arguments[1], password: arguments[2], "
                               "next: '/', _xsrf: stolenXsrf()})", f"{gateway}/login", USER, PASSWORD)
        wait_for(lambda: browser.current_url.startswith(gateway), 10, f"the forged login from {attacker}")
        assert navigation_status(browser) == 403, attacker
        assert not sessions(browser), f"a login forged by {attacker} made a session"

    browser.get(f"{gateway}/")
    log_in(browser, PASSWORD)
    wait_for(lambda: path_of(browser) == "/" and sessions(browser), 10, "the visitor's own login")
    for attacker in attackers:
        browser.get(f"{attacker}/index.html")
        assert browser.execute_script("return forgeDelete(arguments[0])", f"{gateway}/api/recordings/{name}") \
            == "TypeError", f"{attacker} got an answer to its DELETE"
        browser.execute_script("forgeForm(arguments[0], {_xsrf: stolenXsrf()})", f"{gateway}/api/recordings/{name}")
        wait_for(lambda: browser.current_url.startswith(gateway), 10, f"the forged form from {attacker}")
        assert navigation_status(browser) == 403, attacker
    assert files_of(ports.recordings, name) == kept
    browser.get(f"{gateway}/")
    assert path_of(browser) == "/" and fetch_status(browser, "/api/recordings") == 200, "the visitor stays logged in"
