"""A frame's or event's bytes on the wire, made once and handed to every viewer.

A camera may have a hundred viewers, so each frame's message is made once, bytes on the wire
included, and the same bytes object goes to every viewer (``Wire``): on the WebSocket the JSON
description as a text frame, then the JPEG as a binary frame; on MJPEG one multipart part,
already in HTTP/1.1 chunked framing. A viewer adds no JSON encoding, concatenation or copy of the
JPEG of its own; its socket's buffer keeps a view of the shared bytes until the kernel has taken
them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pipeline.protocol import Event, Frame
from pipeline.web.hub import MAX_CAMERAS

MJPEG_BOUNDARY = "camserverframe"
WS_TEXT, WS_BINARY = 0x1, 0x2
Message = TypeVar("Message", Frame, Event)


def websocket_header(opcode: int, length: int) -> bytes:
    """The header of a whole (FIN), unmasked, uncompressed WebSocket frame, as a server sends it (RFC 6455 5.2)."""
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def websocket_text(message: dict[str, Any]) -> bytes:
    """A JSON message as a WebSocket text frame on the wire."""
    data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
    return websocket_header(WS_TEXT, len(data)) + data


def websocket_frame(frame: Frame) -> bytes:
    """A frame's two WebSocket messages as one buffer: its JSON description, then its JPEG."""
    description = websocket_text({"type": "frame", "camera": frame.camera, "seq": frame.seq, "ts": frame.ts,
                                  "w": frame.width, "h": frame.height, "demo": frame.demo})
    return description + websocket_header(WS_BINARY, len(frame.jpeg)) + frame.jpeg


def websocket_event(event: Event) -> bytes:
    return websocket_text({"type": "event", "event": event.body()})


def mjpeg_part(frame: Frame) -> bytes:
    """A frame as one part of the multipart MJPEG stream; Seq and Ts headers as on /snapshot.jpg."""
    return (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
            f"X-Camserver-Seq: {frame.seq}\r\nX-Camserver-Ts: {frame.ts:.6f}\r\n\r\n").encode() + frame.jpeg + b"\r\n"


def mjpeg_chunk(frame: Frame) -> bytes:
    """The part as one HTTP/1.1 chunk, which is how an HTTP/1.1 response of unknown length is sent."""
    part = mjpeg_part(frame)
    return b"%x\r\n%b\r\n" % (len(part), part)


class Shared(Generic[Message]):
    """The wire bytes of the newest message of each camera, made on first use and then handed out.

    Keyed by the message object itself (``is``), not by its value: the hub gives every viewer the
    same object, and hashing or comparing a JPEG would cost what sharing saves.
    """

    def __init__(self, encode: Callable[[Message], bytes]) -> None:
        self._encode = encode
        self._made: dict[str, tuple[Message, bytes]] = {}

    def __call__(self, message: Message) -> bytes:
        made = self._made.get(message.camera)
        if made is not None and made[0] is message:
            return made[1]
        data = self._encode(message)
        if len(self._made) >= MAX_CAMERAS and message.camera not in self._made:
            self._made.clear()  # made-up cameras come and go; the real ones fill it again at their next frame
        self._made[message.camera] = (message, data)
        return data


class Wire:
    """Every live route's shared encodings; one per application."""

    def __init__(self) -> None:
        self.websocket_frame = Shared(websocket_frame)
        self.websocket_event = Shared(websocket_event)
        self.mjpeg_chunk = Shared(mjpeg_chunk)
        self.mjpeg_part = Shared(mjpeg_part)
