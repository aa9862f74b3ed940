"""Hooks stage: runs your commands and POSTs webhooks on events, like Motion's on_event_start.

Optional and off by default: a subscriber like pipeline.logger, binding nothing, so a hook that
hangs or a webhook receiver that is down delays nothing but itself. It hears the detector's and
the recorder's events, and the frames (only their headers count: which camera, when; the JPEG
is never decoded) to tell when a camera goes silent.

Events: ``motion_start``, ``motion_end``, ``recording_saved`` (its mp4 needs ``--recordings``),
``camera_lost`` (no frame for ``--camera-lost-after`` seconds) and ``camera_found`` (frames again
after a loss; a camera streaming when this stage starts is not "found").

Command hooks (``--on-motion-start`` ... ``--on-camera-found``) are split like a shell line with
shlex and run as that argv, never by a shell, so a camera id or a file name cannot become shell
syntax. In each argument ``{event}``, ``{camera}``, ``{path}``, ``{name}`` and ``{ts}`` are
replaced; the same values, and the whole event as JSON, are in the hook's environment::

    CAMSERVER_EVENT         motion_start, motion_end, recording_saved, camera_lost, camera_found
    CAMSERVER_EVENT_CAMERA  the camera id
    CAMSERVER_EVENT_PATH    recording_saved: the mp4's absolute path (empty otherwise)
    CAMSERVER_EVENT_NAME    recording_saved: the recording's name (empty otherwise)
    CAMSERVER_EVENT_TS      Unix time of the event
    CAMSERVER_EVENT_JSON    the event's body, as the webhook sends it

A run is killed (with the processes it started) after ``--hook-timeout`` seconds, and a non-zero
exit is logged with the end of its stderr. At most ``--hook-max-running`` runs at once: one more
is dropped, counted and warned about (rate-limited), not queued. A queue behind hooks slower than
the events would grow without bound and run each hook later and later, about motion long over;
dropping keeps every run that happens timely, and the warning says to raise the cap or speed the
hook up. The webhook secret and the login password are not passed on to the hooks' environment.

Webhooks (``--webhook-url``, comma-separated for several) get each event as a POST of
``{"event": TYPE, "camera": ID, "ts": UNIX_TIME, "data": {...}}`` (``data``: the event's own
keys). With ``--webhook-secret`` each request carries::

    X-Camserver-Timestamp: T          (Unix seconds, when this attempt was sent)
    X-Camserver-Signature: sha256=HEX (HMAC-SHA256 with the secret of the bytes  T + "." + body)

so a receiver recomputes the HMAC over the timestamp header, a dot and the raw body it got, compares
in constant time, and refuses a timestamp more than a few minutes old: a captured request cannot be
replayed later, nor its timestamp changed. A connection error, a timeout or a 5xx answer is retried
after 1, 2, 4 and 8 s (5 tries in all, each re-signed); a 4xx is the receiver refusing, not retried.
Each URL has its own sender thread and a queue of QUEUE_SIZE events; when full the oldest is dropped
and counted. URLs and messages are logged with any password masked, and the secret never.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from pipeline.bus.curve import bus_curve
from pipeline.bus.sockets import EVENT_HWM, FRAME_HWM, Decoder, receive, subscriber
from pipeline.config.options import MAX_CAMERAS, Config, ConfigError
from pipeline.config.options import OPTIONS as ALL_OPTIONS
from pipeline.protocol import Event, Frame, event_topic, frame_topic
from pipeline.record.library import parse_name
from pipeline.stage.lifecycle import main, message_summary
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.stage.redact import mask_url

OPTIONS = ("frames", "events", "recorder_events", "recordings", "on_motion_start", "on_motion_end",
           "on_recording_saved", "on_camera_lost", "on_camera_found", "hook_timeout", "hook_max_running",
           "camera_lost_after", "webhook_url", "webhook_secret", "log_level", "log_time", "curve_keys",
           "insecure_bus")
KINDS = ("motion_start", "motion_end", "recording_saved", "camera_lost", "camera_found")
PLACEHOLDERS = ("event", "camera", "path", "name", "ts")
# Variables of this process a hook must not inherit: they are the server's secrets.
SECRET_ENV = frozenset(option.env for option in ALL_OPTIONS.values() if option.secret)
QUEUE_SIZE = 100
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)
HTTP_TIMEOUT_S = 10.0
STDERR_TAIL = 300
POLL_MS = 200

log = logging.getLogger("camserver.hooks")


def commands(cfg: Config) -> dict[str, list[str]]:
    """Each hooked event's argv; ConfigError naming the option for a line shlex cannot split."""
    found = {}
    for kind in KINDS:
        line = getattr(cfg, f"on_{kind}")
        if line is None:
            continue
        option = ALL_OPTIONS[f"on_{kind}"]
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise ConfigError(f"invalid {option.flag} {line!r}: {exc}") from None
        if not argv:
            raise ConfigError(f"invalid {option.flag} {line!r}: no command")
        found[kind] = argv
    return found


def webhook_urls(cfg: Config) -> list[str]:
    """The http(s) URLs of --webhook-url; ConfigError (password masked) for anything else."""
    urls = [url.strip() for url in (cfg.webhook_url or "").split(",") if url.strip()]
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid --webhook-url {mask_url(url)!r}: expected http(s)://HOST/...")
    return urls


def check(cfg: Config) -> None:
    commands(cfg)
    webhook_urls(cfg)
    if cfg.webhook_secret is not None and cfg.webhook_url is None:
        raise ConfigError("--webhook-secret without --webhook-url")


def recording_file(event: Event, recordings: Path) -> tuple[str, str]:
    """(absolute mp4 path, name) of a recording_saved event, or empty strings.

    Only a file name of the recorder's own pattern is taken: the event comes from the network, and
    a path like ``../x`` or ``-rf`` must never reach a hook's argv.
    """
    video, name = event.data.get("video"), event.data.get("name")
    if not isinstance(video, str) or not isinstance(name, str) or parse_name(name) is None or video != f"{name}.mp4":
        return "", ""
    return str((recordings / video).resolve()), name


def body(event: Event) -> dict[str, Any]:
    """What a webhook receives and CAMSERVER_EVENT_JSON holds."""
    return {"event": event.type, "camera": event.camera, "ts": event.ts, "data": event.data}


def substitute(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """``{camera}`` and the other placeholders replaced; any other brace is left as it is."""
    out = []
    for arg in argv:
        for key in PLACEHOLDERS:
            arg = arg.replace("{" + key + "}", values[key])
        out.append(arg)
    return out


class CommandHooks:
    """Runs the hooked events' commands, each in a thread of its own, capped, timed out and logged."""

    def __init__(self, argvs: Mapping[str, list[str]], recordings: Path, timeout_s: float, max_running: int) -> None:
        self._argvs, self._recordings = argvs, recordings
        self._timeout, self._max = timeout_s, max_running
        self._running: set[subprocess.Popen[bytes]] = set()
        self._slots = 0
        self._lock = threading.Lock()
        self._notes = RateLimitedLog(log)
        self.dropped = 0
        self._env = {key: value for key, value in os.environ.items() if key not in SECRET_ENV}

    def handle(self, event: Event) -> None:
        argv = self._argvs.get(event.type)
        if argv is None:
            return
        with self._lock:
            if self._slots >= self._max:
                self.dropped += 1
                self._notes.warning("dropped", "dropped the %s hook of %s: %d hooks already running "
                                    "(%d dropped in all; raise --hook-max-running or make the hook faster)",
                                    event.type, event.camera, self._slots, self.dropped)
                return
            self._slots += 1
        path, name = recording_file(event, self._recordings) if event.type == "recording_saved" else ("", "")
        values = {"event": event.type, "camera": event.camera, "path": path, "name": name, "ts": f"{event.ts:.3f}"}
        env = {**self._env, "CAMSERVER_EVENT": event.type, "CAMSERVER_EVENT_CAMERA": event.camera,
               "CAMSERVER_EVENT_PATH": path, "CAMSERVER_EVENT_NAME": name, "CAMSERVER_EVENT_TS": values["ts"],
               "CAMSERVER_EVENT_JSON": json.dumps(body(event), separators=(",", ":"))}
        threading.Thread(target=self._run, args=(substitute(argv, values), env, event), daemon=True,
                         name=f"hook-{event.type}").start()

    def _run(self, argv: list[str], env: dict[str, str], event: Event) -> None:
        what = f"{event.type} hook of {event.camera} ({argv[0]})"
        try:
            # A session of its own, so a timeout kills what the hook started too.
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            self._notes.log(logging.ERROR, f"start:{event.type}", "cannot run the %s: %s", what, exc)
            self._done(None)
            return
        with self._lock:
            self._running.add(proc)
        try:
            try:
                _, stderr = proc.communicate(timeout=self._timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                proc.communicate()
                self._notes.warning(f"timeout:{event.type}", "killed the %s after --hook-timeout %g s", what,
                                    self._timeout)
                return
            if proc.returncode != 0:
                tail = mask_url(stderr[-STDERR_TAIL:].decode(errors="replace").strip())
                self._notes.warning(f"exit:{event.type}", "the %s exited with status %d%s", what, proc.returncode,
                                    f": {tail}" if tail else "")
            else:
                log.debug("the %s ran", what)
        finally:
            self._done(proc)

    def _done(self, proc: subprocess.Popen[bytes] | None) -> None:
        with self._lock:
            self._slots -= 1
            self._running.discard(proc)  # type: ignore[arg-type]

    def close(self) -> None:
        """Kill the hooks still running, so none outlives the stage unwatched, and say what was dropped."""
        with self._lock:
            running = list(self._running)
        for proc in running:
            _kill(proc)
        if running:
            log.info("killed %d hook(s) still running at stop", len(running))
        if self.dropped:
            log.info("%d hook run(s) dropped in all (--hook-max-running %d)", self.dropped, self._max)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a hook and every process of its session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


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


@dataclass
class Seen:
    """When a camera's last frame came (monotonic), its last seq, and whether it counts as lost."""

    at: float
    seq: int
    lost: bool = False


class Watchdog:
    """camera_lost when a camera's frames stop for ``after_s``, camera_found when they come back."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._after, self._clock = after_s, clock
        self._cameras: dict[str, Seen] = {}
        self._notes = RateLimitedLog(log)

    def frame(self, frame: Frame) -> Event | None:
        now = self._clock()
        seen = self._cameras.get(frame.camera)
        if seen is None:
            if len(self._cameras) >= MAX_CAMERAS:
                self._notes.warning("cameras", "ignoring camera %s: already watching %d cameras", frame.camera,
                                    len(self._cameras))
                return None
            self._cameras[frame.camera] = Seen(now, frame.seq)
            return None
        silent = now - seen.at
        found = seen.lost
        seen.at, seen.seq, seen.lost = now, frame.seq, False
        if found:
            return Event(frame.camera, frame.seq, frame.ts, "camera_found", {"silent_s": round(silent, 1)})
        return None

    def tick(self) -> list[Event]:
        now, lost = self._clock(), []
        for camera, seen in self._cameras.items():
            if not seen.lost and now - seen.at >= self._after:
                seen.lost = True
                lost.append(Event(camera, seen.seq, time.time(), "camera_lost", {"silent_s": round(now - seen.at, 1)}))
        return lost


def run(cfg: Config, stop: threading.Event) -> int:
    argvs, urls = commands(cfg), webhook_urls(cfg)
    if not argvs and not urls:
        log.warning("no hook and no webhook configured (--on-motion-start ..., --webhook-url): nothing to do")
    hooks = CommandHooks(argvs, cfg.recordings, cfg.hook_timeout, cfg.hook_max_running)
    webhooks = [Webhook(url, cfg.webhook_secret, stop) for url in urls]
    watchdog = Watchdog(cfg.camera_lost_after)
    watch_frames = bool({"camera_lost", "camera_found"} & argvs.keys()) or bool(webhooks)

    def dispatch(event: Event) -> None:
        if event.type not in KINDS:
            return
        log.info("%s %s seq=%d", event.camera, event.type, event.seq)
        hooks.handle(event)
        for webhook in webhooks:
            webhook.offer(event)

    event_endpoints = (*cfg.events, *cfg.recorder_events)
    keys = bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=(),
                     connects=(*event_endpoints, *(cfg.frames if watch_frames else ())))
    decoder, failures = Decoder(log), RateLimitedLog(log)
    try:
        with (
            zmq.Context() as ctx,
            subscriber(ctx, event_endpoints, [event_topic()], EVENT_HWM, keys) as events,
            subscriber(ctx, cfg.frames if watch_frames else (), [frame_topic()], FRAME_HWM, keys) as frames,
        ):
            log.info("hooks for %s, webhooks to %s; events from %s%s", ",".join(argvs) or "nothing",
                     ",".join(w.shown for w in webhooks) or "nobody", ",".join(event_endpoints),
                     f", frames from {','.join(cfg.frames)}" if watch_frames else "")
            poller = zmq.Poller()
            poller.register(events, zmq.POLLIN)
            poller.register(frames, zmq.POLLIN)
            while not stop.is_set():
                ready = dict(poller.poll(POLL_MS))
                messages = [*receive(events, 0, decoder)] if events in ready else []
                # Frame.decode reads the header and the JPEG's size from its SOF marker, never the pixels.
                messages += receive(frames, 0, decoder) if frames in ready else []
                for message in messages:
                    try:
                        if isinstance(message, Frame):
                            found = watchdog.frame(message)
                            if found is not None:
                                dispatch(found)
                        else:
                            dispatch(message)
                    except Exception:
                        failures.log(logging.ERROR, "handler", "skipped a message that could not be handled: %s",
                                     message_summary(message), exc_info=True)
                for lost in watchdog.tick():
                    dispatch(lost)
    finally:
        hooks.close()
        for webhook in webhooks:
            webhook.wake()
            if webhook.dropped:
                log.info("webhook %s: %d event(s) dropped in all (queue full)", webhook.shown, webhook.dropped)
    return 0


if __name__ == "__main__":
    main("hooks", OPTIONS, __doc__, run, check)
