"""What every stage process shares: logging set-up and stopping cleanly on a signal.

SIGTERM (supervisord, systemd, honcho), SIGINT (Ctrl-C) and SIGQUIT (honcho's supervisord export)
all ask for the same orderly stop, so every stage exits 0 whichever manager runs it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

import zmq

from pipeline.bus.sockets import Decoder, receive
from pipeline.config.loading import load_or_exit
from pipeline.config.options import Config
from pipeline.protocol import Event, Frame, Video
from pipeline.stage.native_stderr import route_native_stderr
from pipeline.stage.ratelog import RateLimitedLog

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
POLL_MS = 200


def setup_logging(stage: str, level: str, with_time: bool = True) -> logging.Logger:
    """One line per message, named by stage; without the time under a manager that adds its own.

    What C libraries print to stderr is routed through the same logger (pipeline.stage.native_stderr).
    """
    logging.basicConfig(
        level=level,
        format=("%(asctime)s " if with_time else "") + f"{stage} %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    log = logging.getLogger(f"camserver.{stage}")
    route_native_stderr(log)
    return log


def stop_event() -> threading.Event:
    """An Event set by any stop signal, for stages whose loop polls with a timeout."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        stop.set()
        # The handler runs between two bytecodes of the main thread, which may be inside a write to
        # the log's stream: logging here failed ("reentrant call inside BufferedWriter") and took
        # the stop with it, so the logger stage was killed after supervisord's grace period. A
        # thread of its own waits for the stream's lock instead.
        threading.Thread(target=logging.getLogger("camserver").info, daemon=True,
                         args=("received %s, stopping", signal.Signals(signum).name)).start()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    return stop


def async_stop_event() -> asyncio.Event:
    """The asyncio twin of stop_event, for stages running an event loop; call it inside the loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        logging.getLogger("camserver").info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, handle, signum)
    return stop


def consume(
    sock: zmq.Socket,
    stop: threading.Event,
    handle: Callable[[Frame | Event], None],
    log: logging.Logger,
) -> None:
    """The loop of a subscribing stage: hand every decoded message to ``handle`` until stopped.

    A message that makes ``handle`` fail costs that message and one rate-limited ERROR with its
    traceback, never the stage: a bug met by one odd message must not stop the others.
    """
    decoder, failures = Decoder(log), RateLimitedLog(log)
    while not stop.is_set():
        for message in receive(sock, POLL_MS, decoder):
            try:
                handle(message)
            except Exception:
                failures.log(logging.ERROR, "handler", "skipped a message that could not be handled: %s",
                             message_summary(message), exc_info=True)


def message_summary(message: Frame | Event | Video) -> str:
    """What a log line says of a message: enough to find it, never its payload."""
    if isinstance(message, Event):
        return f"event {message.camera} {message.type} seq={message.seq}"
    return f"{'frame' if isinstance(message, Frame) else 'video'} {message.camera} seq={message.seq}"


def main(stage: str, options: Sequence[str], doc: str, run: Callable[[Config, threading.Event], int],
         check: Callable[[Config], None] | None = None) -> NoReturn:
    """Entry point of a threaded stage: configure (``check``: a rule across options), then run until a stop signal.

    A camera, file or address that cannot be opened is an OSError naming it: one log line and
    exit status 1, which a process manager shows better than a traceback.
    """
    cfg = load_or_exit(stage, options, doc.splitlines()[0], check)
    log = setup_logging(stage, cfg.log_level, cfg.log_time)
    if "cv2" in sys.modules:  # imported by the stages that handle pixels; the logger never loads it
        # One core per stage: on frames this small, waking OpenCV's worker threads costs more CPU
        # than they save (detector 3.0 -> 2.1 ms per 768x576 frame), and a Pi's other cores run the
        # other stages.
        sys.modules["cv2"].setNumThreads(1)
    stop = stop_event()
    try:
        code = run(cfg, stop)
    except OSError as exc:
        log.error("%s", exc)
        code = 1
    raise SystemExit(code)
