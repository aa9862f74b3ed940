"""The security rules on their own: password hashes, the guessing brake, Host names, Basic headers, log floods."""

from __future__ import annotations

import base64
import logging
import socket
from pathlib import Path

import pytest

from pipeline import passwd
from pipeline.config.options import Config
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.web.auth import FAILURE_WINDOW_S, Credentials, FailedLogins, cookie_secret
from pipeline.web.base import basic_credentials
from pipeline.web.hosts import HostPolicy, is_loopback
from pipeline.web.login import local_path
from tests.support.clock import FakeClock


def test_a_hash_verifies_its_password_only_and_is_salted() -> None:
    first, second = passwd.hash_password("correct horse"), passwd.hash_password("correct horse")
    assert first != second, "the same password must hash differently (salt)"
    assert first.startswith("scrypt$16384$8$1$") and "correct horse" not in first
    assert passwd.verify(first, "correct horse") and passwd.verify(second, "correct horse")
    assert not passwd.verify(first, "correct horsE") and not passwd.verify(first, "")


@pytest.mark.parametrize("line", ["hunter2", "scrypt$16384$8$1$c2FsdA==", "bcrypt$16384$8$1$c2FsdHNhbHQ=$" + "A" * 44,
                                  "scrypt$1000$8$1$c2FsdHNhbHQ=$" + "A" * 44, "scrypt$16384$8$1$!!$" + "A" * 44])
def test_check_hash_refuses_what_is_not_one_of_our_hashes(line: str) -> None:
    with pytest.raises(ValueError, match=r"python -m pipeline\.passwd") as caught:
        passwd.check_hash(line)
    assert line not in str(caught.value), "the error must not repeat the file's content"


def test_credentials_remember_only_verified_passwords() -> None:
    creds = Credentials.from_config(Config(user="keeper", password="open sesame"))
    assert creds is not None and Credentials.from_config(Config()) is None
    assert not creds.known("keeper", "open sesame"), "nothing is cached before the first full check"
    assert not creds.check("keeper", "wrong") and not creds.known("keeper", "wrong")
    assert not creds.check("admin", "open sesame"), "the user name counts too"
    assert creds.check("keeper", "open sesame") and creds.known("keeper", "open sesame")
    other = Credentials.from_config(Config(user="keeper", password="changed"))
    assert other is not None and creds.fingerprint(b"k" * 32) != other.fingerprint(b"k" * 32)


def test_five_failures_a_minute_then_the_address_waits_for_the_oldest_to_expire() -> None:
    clock = FakeClock()
    failures = FailedLogins(clock)
    for n in range(1, 6):
        assert failures.retry_after("10.0.0.9") == 0
        assert failures.fail("10.0.0.9") == n
        clock.now += 1
    assert failures.retry_after("10.0.0.9") == pytest.approx(FAILURE_WINDOW_S - 5)
    assert failures.retry_after("10.0.0.10") == 0, "another address is not blocked"
    clock.now += FAILURE_WINDOW_S - 5
    assert failures.retry_after("10.0.0.9") == 0, "the oldest failure has left the window"
    failures.fail("10.0.0.9")
    assert failures.retry_after("10.0.0.9") > 0
    failures.succeed("10.0.0.9")
    assert failures.retry_after("10.0.0.9") == 0


def test_the_failure_table_stays_bounded_under_a_flood_of_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipeline.web.auth.MAX_TRACKED_ADDRESSES", 100)
    failures = FailedLogins(FakeClock())
    for n in range(1000):
        failures.fail(f"10.0.{n // 250}.{n % 250}")
    assert len(failures._failures) <= 100


def test_cookie_secret_is_created_once_private_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    secret = cookie_secret(folder)
    assert len(secret) >= 32 and cookie_secret(folder) == secret
    assert (folder / ".camserver-secret").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("host", "local", "allowed"), [
    ("127.0.0.1:8100", "127.0.0.1", True),
    ("localhost:8100", "127.0.0.1", True),
    ("LOCALHOST.:8100", "127.0.0.1", True),
    ("cam.localhost", "127.0.0.1", True),
    ("[::1]:8100", "::1", True),
    ("127.0.0.2", "127.0.0.1", True),
    ("192.168.1.20:8100", "192.168.1.20", True),
    ("192.168.1.20:8100", "::ffff:192.168.1.20", True),
    ("192.168.1.21:8100", "192.168.1.20", False),
    ("evil.example:8100", "127.0.0.1", False),
    ("localhost.evil.example", "127.0.0.1", False),
    ("cam.example", "192.168.1.20", True),
    ("CAM.example:443", "192.168.1.20", True),
    ("other.example", "192.168.1.20", False),
    ("", "127.0.0.1", False),
])
def test_host_policy(host: str, local: str, allowed: bool) -> None:
    policy = HostPolicy(Config(host="0.0.0.0", allowed_hosts=("cam.example",)))
    assert policy.allows(host, local) is allowed


def test_host_policy_knows_the_configured_host_and_the_machine_name() -> None:
    policy = HostPolicy(Config(host="mypi.lan"))
    assert policy.allows("mypi.lan:8100", "10.1.1.1")
    assert policy.allows(f"{socket.gethostname()}.local:8100", "10.1.1.1")
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.9.10")
    assert not is_loopback("0.0.0.0") and not is_loopback("mypi.lan") and not is_loopback("192.168.1.2")


@pytest.mark.parametrize(("header", "expected"), [
    ("Basic " + base64.b64encode(b"admin:pa:ss").decode(), ("admin", "pa:ss")),
    ("basic " + base64.b64encode("anna:pässword".encode()).decode(), ("anna", "pässword")),
    ("Basic " + base64.b64encode(b"no colon").decode(), None),
    ("Basic !!!", None),
    ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), None),
    ("Bearer abc", None),
    ("", None),
    (None, None),
])
def test_basic_credentials(header: str | None, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(header) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("/", "/"), ("/#recordings", "/#recordings"), ("/stream.mjpg?camera=x", "/stream.mjpg?camera=x"),
    ("//evil.example/", "/"), ("/\\evil.example", "/"), ("https://evil.example/", "/"), ("", "/"), (None, "/"),
])
def test_after_login_only_local_paths(target: str | None, expected: str) -> None:
    assert local_path(target) == expected


def test_rate_limited_log_writes_one_line_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    notes = RateLimitedLog(logging.getLogger("test.ratelog"), 10.0, clock)
    with caplog.at_level(logging.WARNING, "test.ratelog"):
        for _ in range(1000):
            notes.warning("flood", "bad message from %s", "x")
            clock.now += 0.001
        notes.warning("other", "another kind")
        clock.now += 10
        notes.warning("flood", "bad message from %s", "x")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad message from x", "another kind", "bad message from x (and 999 more like it in the last 11 s)"]
