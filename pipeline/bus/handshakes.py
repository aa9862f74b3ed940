"""Failed CURVE handshakes, logged: otherwise a subscriber with the wrong keys just receives nothing."""

from __future__ import annotations

import logging
import threading

import zmq
from zmq.utils.monitor import recv_monitor_message

from pipeline.stage.ratelog import RateLimitedLog

log = logging.getLogger("camserver.bus")

_SERVER_FAILURES = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "it does not use CURVE (a stage started without --curve-keys?)",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "its keys are not this bus's (a host with another keys folder?)",
}
_CLIENT_FAILURES = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        "the publisher there does not use CURVE (started without --curve-keys?)",
}
_CLIENT_FAILURE = "the publisher there does not hold this bus's secret key (another keys folder?) or no CURVE at all"


class HandshakeWatch(threading.Thread):
    """Logs a CURVE socket's failed handshakes, rate-limited, from ZeroMQ's monitor events.

    A handshake that fails is otherwise silent: a subscriber with the wrong keys just receives
    nothing. The thread ends when the socket is closed (MONITOR_STOPPED) or its context ends.
    A publisher's refusals by ZAP are left to the Authenticator, which knows the client's address.
    """

    def __init__(self, sock: zmq.Socket, server: bool) -> None:
        super().__init__(name="camserver-handshakes", daemon=True)
        self._server = server
        self._notes = RateLimitedLog(log)
        events = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_MONITOR_STOPPED
        if not server:
            events |= zmq.EVENT_HANDSHAKE_FAILED_AUTH
        address = f"inproc://camserver.handshakes.{id(self)}"
        sock.monitor(address, events)
        # A shadow context, as for the ZAP thread: this socket belongs to the thread alone.
        self._monitor = zmq.Context.shadow(sock.context.underlying).socket(zmq.PAIR)
        self._monitor.connect(address)

    def run(self) -> None:
        try:
            while True:
                event = recv_monitor_message(self._monitor)
                if event["event"] == zmq.EVENT_MONITOR_STOPPED:
                    return
                self._note(event["event"], event["value"], event["endpoint"].decode("utf-8", "replace"))
        except zmq.ContextTerminated:
            pass
        finally:
            self._monitor.close(linger=0)

    def _note(self, kind: int, value: int, endpoint: str) -> None:
        if self._server:
            if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                why = _SERVER_FAILURES.get(value, f"CURVE protocol error {value:#x}")
                self._notes.warning(f"refused {value}", "refused a peer on %s: %s", endpoint, why)
            else:
                self._notes.warning("broke off", "a peer on %s broke off the CURVE handshake", endpoint)
        elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self._notes.warning(f"refused {endpoint}", "the publisher at %s refused this stage's key (ZAP status %d)",
                                endpoint, value)
        else:
            # A publisher without CURVE may hang up before the client reads why (EPIPE, no detail),
            # so that line hedges, and a clearer reason that follows gets a line of its own.
            why = _CLIENT_FAILURES.get(value) if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL else None
            why = why or _CLIENT_FAILURE
            self._notes.warning(f"failed {kind} {value} {endpoint}", "the CURVE handshake with %s failed: %s",
                                endpoint, why)


