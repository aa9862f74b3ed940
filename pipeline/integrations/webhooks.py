"""Webhooks: each event POSTed as signed JSON to the URLs of --webhook-url, one sender thread per URL.

A receiver checks the HMAC-SHA256 over the timestamp header, a dot and the raw body, and refuses
an old timestamp, so a captured request cannot be replayed later (the scheme is in
docs/integrations.md). A connection error, a timeout or a 5xx answer is retried with backoff,
each try re-signed; a 4xx is the receiver refusing, and is not. Each URL has a bounded queue whose
oldest event is dropped and counted when full. URLs are logged with any password masked, the
secret never.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from pipeline.config.options import Config, ConfigError
from pipeline.protocol import Event
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.stage.redact import mask_url

QUEUE_SIZE = 100
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)
HTTP_TIMEOUT_S = 10.0

log = logging.getLogger("camserver.hooks")


def webhook_urls(cfg: Config) -> list[str]:
    """The http(s) URLs of --webhook-url; ConfigError (password masked) for anything else."""
    urls = [url.strip() for url in (cfg.webhook_url or "").split(",") if url.strip()]
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid --webhook-url {mask_url(url)!r}: expected http(s)://HOST/...")
    return urls


def body(event: Event) -> dict[str, Any]:
    """What a webhook receives and CAMSERVER_EVENT_JSON holds."""
    return {"event": event.type, "camera": event.camera, "ts": event.ts, "data": event.data}


class Webhook:
    """One URL's sender: a thread POSTing queued events in order, retrying what may succeed later."""

    def __init__(self, url: str, secret: str | None, stop: threading.Event,
                 delays: Sequence[float] = RETRY_DELAYS_S) -> None:
        parts = urllib.parse.urlsplit(url)
        self.shown = mask_url(url)
        # urllib does not send a URL's user:password; it goes in the Authorization header instead.
        self._auth = None
        if parts.username is not None:
            credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(credentials.encode()).decode()
            netloc = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"
            parts = parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc)
        self._url = urllib.parse.urlunsplit(parts)
        self._secret = secret.encode() if secret is not None else None
        self._stop, self._delays = stop, delays
        self._queue: collections.deque[Event] = collections.deque(maxlen=QUEUE_SIZE)
        self._ready = threading.Condition()
        self._notes = RateLimitedLog(log)
        self.dropped = 0
        self.thread = threading.Thread(target=self._send_all, daemon=True, name="webhook")
        self.thread.start()

    def offer(self, event: Event) -> None:
        with self._ready:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
                self._notes.warning("full", "webhook %s: queue of %d full, dropped the oldest event (%d dropped in "
                                    "all)", self.shown, QUEUE_SIZE, self.dropped)
            self._queue.append(event)
            self._ready.notify()

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def _send_all(self) -> None:
        while not self._stop.is_set():
            with self._ready:
                while not self._queue and not self._stop.is_set():
                    self._ready.wait()
                if self._stop.is_set():
                    return
                event = self._queue.popleft()
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        raw = json.dumps(body(event), separators=(",", ":")).encode()
        what = f"webhook {self.shown} ({event.type} of {event.camera})"
        for attempt in range(len(self._delays) + 1):
            status, reason = self._post(raw, event.type)
            if status is not None and status < 400:
                log.debug("%s: %d", what, status)
                return
            if status is not None and status < 500:
                self._notes.warning(f"refused:{event.type}", "%s refused with %d %s, not retried", what, status,
                                    reason)
                return
            if attempt == len(self._delays):
                break
            if self._stop.wait(self._delays[attempt]):
                return
        self._notes.warning(f"failed:{event.type}", "%s failed %d times, dropped: %s", what, len(self._delays) + 1,
                            reason)

    def _post(self, raw: bytes, kind: str) -> tuple[int | None, str]:
        """(HTTP status, reason), or (None, why) when no answer came."""
        headers = {"Content-Type": "application/json", "User-Agent": "camserver-hooks", "X-Camserver-Event": kind}
        if self._auth is not None:
            headers["Authorization"] = self._auth
        if self._secret is not None:
            stamp = str(int(time.time()))
            digest = hmac.new(self._secret, stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
            headers |= {"X-Camserver-Timestamp": stamp, "X-Camserver-Signature": f"sha256={digest}"}
        request = urllib.request.Request(self._url, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, str(response.reason)
        except urllib.error.HTTPError as exc:
            return exc.code, str(exc.reason)
        except (urllib.error.URLError, OSError) as exc:
            return None, mask_url(str(getattr(exc, "reason", exc)))
