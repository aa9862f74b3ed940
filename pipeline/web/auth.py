"""Who may use the gateway: the password, the session cookie's secret, and the brake on guessing.

Nothing here knows about HTTP; the base handler asks these objects and turns their answers into
responses, so the rules are tested without a server.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pipeline.config.options import Config
from pipeline.passwd import check_hash, hash_password, verify

SECRET_FILE = ".camserver-secret"
SESSION_DAYS = 30
FAILURES_ALLOWED = 5
FAILURE_WINDOW_S = 60.0
# Addresses remembered at most: a flood of made-up addresses cannot grow the table without bound.
MAX_TRACKED_ADDRESSES = 10_000
VERIFIED_CACHE = 16


class Credentials:
    """The one user and the hash of its password; remembers recently verified passwords.

    HTTP Basic sends the password with every request (VLC, ffmpeg and Home Assistant poll with
    it). Running scrypt each time would cost tens of milliseconds per snapshot, so a password that
    verified once is remembered as an HMAC under a per-process key, and later requests compare
    that in constant time. Only correct passwords enter the cache; wrong ones always pay scrypt.
    """

    def __init__(self, user: str, password_hash: str) -> None:
        self.user = user
        self._hash = check_hash(password_hash)
        self._key = secrets.token_bytes(32)
        self._verified: deque[bytes] = deque(maxlen=VERIFIED_CACHE)

    @classmethod
    def from_config(cls, cfg: Config) -> Credentials | None:
        """The configured login, or None when the gateway runs without one (loopback only)."""
        if cfg.password_file is not None:
            return cls(cfg.user, cfg.password_file.read_text())
        if cfg.password is not None:
            return cls(cfg.user, hash_password(cfg.password))
        return None

    def known(self, user: str, password: str) -> bool:
        """True when this user and password were verified before: cheap, constant time."""
        mac = self._mac(user, password)
        return any(hmac.compare_digest(mac, seen) for seen in self._verified)

    def check(self, user: str, password: str) -> bool:
        """The full check with the KDF (slow: run it off the event loop)."""
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = verify(self._hash, password)
        if user_ok and password_ok:
            self._verified.append(self._mac(user, password))
        return user_ok and password_ok

    def fingerprint(self, secret: bytes) -> str:
        """Goes into the session cookie, so that changing the password ends every session."""
        return hmac.new(secret, f"{self.user}\n{self._hash}".encode(), hashlib.sha256).hexdigest()[:32]

    def _mac(self, user: str, password: str) -> bytes:
        return hmac.new(self._key, f"{user}\n{password}".encode(), hashlib.sha256).digest()


def cookie_secret(folder: Path) -> bytes:
    """The key that signs session cookies, kept in ``folder`` so sessions survive a restart.

    Created on first start, readable by the owner only. Deleting it logs everybody out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < 32:
            raise OSError(f"{path} is too short to be a cookie secret: delete it and start again") from None
        return secret
    secret = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as file:
        file.write(secret + b"\n")
        file.flush()
        os.fsync(file.fileno())
    return secret


class FailedLogins:
    """At most FAILURES_ALLOWED wrong passwords per client address in any FAILURE_WINDOW_S.

    The window slides: an address is let in again as soon as its oldest failure is a window old.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        recent = self._recent(address)
        if len(recent) < FAILURES_ALLOWED:
            return 0.0
        return max(recent[0] + FAILURE_WINDOW_S - self._clock(), 0.001)

    def fail(self, address: str) -> int:
        """Count one failure; returns how many this address had in the window."""
        if address not in self._failures and len(self._failures) >= MAX_TRACKED_ADDRESSES:
            self._forget_expired()
            if len(self._failures) >= MAX_TRACKED_ADDRESSES:
                self._failures.pop(next(iter(self._failures)))
        recent = self._failures.setdefault(address, deque(maxlen=FAILURES_ALLOWED))
        recent.append(self._clock())
        return len(self._recent(address))

    def succeed(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        recent = self._failures.get(address, deque())
        while recent and recent[0] <= self._clock() - FAILURE_WINDOW_S:
            recent.popleft()
        return recent

    def _forget_expired(self) -> None:
        for address in [a for a in self._failures if not self._recent(a)]:
            del self._failures[address]
