"""What C libraries print, as our own log lines: one line per message, stage-named, calm, secret-free.

FFmpeg (inside OpenCV and PyAV) writes its messages straight to file descriptor 2, past Python's
logging: they arrive without time or stage name, may land in the middle of one of our lines, and
a broken stream can repeat one every frame. So file descriptor 2 becomes a pipe read by a thread
that logs each line through the stage's logger, rate-limited per kind of message and with any
URL's password masked, while Python's own stderr (our log lines, tracebacks) keeps writing where
file descriptor 2 went before.

The pipe's write end is non-blocking: should the reader ever fall behind, a C library loses a
message rather than blocking while it may hold the GIL the reader needs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading

from pipeline.stage.ratelog import RateLimitedLog
from pipeline.stage.redact import mask_url

# "[tcp @ 0x7f16780054c0] Connection refused": the component, and the message without the address.
_PREFIX = re.compile(r"^\[(?P<component>[^\]@]+?)\s*@\s*0x[0-9a-fA-F]+\]\s*")
# Messages that differ only in numbers (addresses, byte counts) are one kind for rate limiting.
_NUMBERS = re.compile(r"(0x[0-9a-fA-F]+|\d+)")


def native_line(raw: bytes) -> str:
    """One line a C library printed, as a log message: its component named, URLs' passwords masked."""
    text = raw.decode("utf-8", errors="replace").strip()
    match = _PREFIX.match(text)
    if match is not None:
        text = f"{match['component'].strip()}: {text[match.end():]}"
    return mask_url(text)


def route_native_stderr(log: logging.Logger) -> None:
    """From now on, lines written to file descriptor 2 by C code become WARNINGs of ``log``."""
    python_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    os.set_blocking(2, False)
    stream = open(python_stderr, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 (lives on)
    sys.stderr = stream
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setStream(stream)
    notes = RateLimitedLog(log)

    def pump() -> None:
        with open(read_end, "rb") as lines:
            for raw in lines:
                message = native_line(raw)
                if message:
                    notes.warning(_NUMBERS.sub("#", message)[:80], "%s", message)

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()
