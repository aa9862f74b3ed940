"""Hook commands: your programs run on events, like Motion's on_event_start, never by a shell.

A command line is split like a shell line (shlex) and run as that argv, so a camera id or a file
name cannot become shell syntax. Placeholders, the environment a command gets, the timeout and the
cap on runs at once are described in docs/integrations.md. A queue behind hooks slower than the
events would grow without bound and run each hook later and later, about motion long over: one
run over the cap is dropped, counted and warned about instead, so every run that happens is timely.
The server's secrets (the options marked secret) are kept out of the hooks' environment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.config.options import OPTIONS, Config, ConfigError
from pipeline.integrations.webhooks import body
from pipeline.protocol import Event
from pipeline.record.library import parse_name
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.stage.redact import mask_url

KINDS = ("motion_start", "motion_end", "recording_saved", "camera_lost", "camera_found")
PLACEHOLDERS = ("event", "camera", "path", "name", "ts")
# Variables of this process a hook must not inherit: they are the server's secrets.
SECRET_ENV = frozenset(option.env for option in OPTIONS.values() if option.secret)
STDERR_TAIL = 300

log = logging.getLogger("camserver.hooks")


def commands(cfg: Config) -> dict[str, list[str]]:
    """Each hooked event's argv; ConfigError naming the option for a line shlex cannot split."""
    found = {}
    for kind in KINDS:
        line = getattr(cfg, f"on_{kind}")
        if line is None:
            continue
        option = OPTIONS[f"on_{kind}"]
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise ConfigError(f"invalid {option.flag} {line!r}: {exc}") from None
        if not argv:
            raise ConfigError(f"invalid {option.flag} {line!r}: no command")
        found[kind] = argv
    return found


def recording_file(event: Event, recordings: Path) -> tuple[str, str]:
    """(absolute mp4 path, name) of a recording_saved event, or empty strings.

    Only a file name of the recorder's own pattern is taken: the event comes from the network, and
    a path like ``../x`` or ``-rf`` must never reach a hook's argv.
    """
    video, name = event.data.get("video"), event.data.get("name")
    if not isinstance(video, str) or not isinstance(name, str) or parse_name(name) is None or video != f"{name}.mp4":
        return "", ""
    return str((recordings / video).resolve()), name


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
