"""CURVE for the bus: who is admitted, and where a plain bus is allowed.

With a ``Curve`` (pipeline.bus.keyfiles) the bus is encrypted and both ends are authenticated: a
publisher is the CURVE server and admits, through ZAP (``authenticated``), only clients whose
public key is a ``*.key`` in the keys folder; a subscriber accepts only a publisher holding the
bus's secret key. Without one the bus is plain ZMTP, which check_bind and check_connect allow
only on this host. Handshakes that fail (a stage without keys, a host with other keys, a
stranger) are logged, one line per kind and interval (RateLimitedLog): the person reading the log
learns why frames do not arrive, and a stranger hammering a port cannot flood it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import zmq
from zmq.auth.thread import ThreadAuthenticator

from pipeline.bus.endpoints import is_local
from pipeline.bus.handshakes import HandshakeWatch
from pipeline.bus.keyfiles import KEYS_HINT, Curve, allowed_keys, load_curve
from pipeline.stage.ratelog import RateLimitedLog

ZAP_DOMAIN = "camserver"
INSECURE_HINT = (f"make keys with {KEYS_HINT} and pass --curve-keys DIR (CAMSERVER_CURVE_KEYS) on every stage, "
                 f"or pass --insecure-bus")

log = logging.getLogger("camserver.bus")


def bus_curve(keys_folder: Path | None, insecure: bool, binds: Sequence[str], connects: Sequence[str]) -> Curve | None:
    """A stage's CURVE keys (--curve-keys), once sure that no endpoint leaves the host without them.

    OSError, which stops the stage with one line, for keys that cannot be used and for an endpoint
    beyond loopback on a plain bus (unless --insecure-bus): frames on the LAN in the clear are a
    camera anyone can watch, and a publisher anyone can impersonate.
    """
    keys = load_curve(keys_folder) if keys_folder is not None else None
    try:
        check_bind(binds, keys, insecure)
        check_connect(connects, keys, insecure)
    except ValueError as exc:
        raise OSError(str(exc)) from None
    if keys is not None:
        log.info("bus encrypted and authenticated (CURVE), keys from %s", keys.folder)
    return keys


def check_bind(endpoints: Iterable[str], curve: Curve | None, allow_insecure: bool) -> None:
    """ValueError naming the first endpoint a publisher would bind for other hosts without encryption."""
    _check_leaves_host(endpoints, curve, allow_insecure, bind=True)


def check_connect(endpoints: Iterable[str], curve: Curve | None, allow_insecure: bool) -> None:
    """ValueError naming the first endpoint on another host a subscriber would connect to without encryption.

    The bus is encrypted whenever it leaves the host, whichever end it leaves from: a subscriber
    reaching across the network to a plain publisher would carry every frame in clear just the same.
    """
    _check_leaves_host(endpoints, curve, allow_insecure, bind=False)


def _check_leaves_host(endpoints: Iterable[str], curve: Curve | None, allow_insecure: bool, bind: bool) -> None:
    if curve is not None or allow_insecure:
        return
    for endpoint in endpoints:
        if not is_local(endpoint, bind):
            action = f"bind {endpoint}: other hosts can reach it" if bind else \
                f"connect to {endpoint}: it is not on this host"
            raise ValueError(f"refusing to {action}, and the bus would cross the network unencrypted; {INSECURE_HINT}")


_authenticated: set[int] = set()  # the contexts (their libzmq address) with a running Authenticator
_authenticated_lock = threading.Lock()


class Authenticator:
    """ZAP for a context's CURVE publishers: admits clients whose public key is a ``*.key`` in the keys folder.

    Without a ZAP handler libzmq admits any client that knows the server's public key, which is
    less than the bus's secret; publisher() therefore refuses a Curve on a context without a
    running Authenticator, and sets ZAP_ENFORCE_DOMAIN so the bus fails closed if it stops early.
    The folder is read at start: a key added later counts after a restart. A refused client costs
    one rate-limited warning with its address and key; pyzmq's own per-request log lines are dropped.
    ``admitted`` and ``refused`` count the clients decided since start. A no-op when ``curve`` is
    None, so a stage needs no branch for the plain bus. One per context (ZAP's endpoint is per context).
    """

    def __init__(self, ctx: zmq.Context, curve: Curve | None) -> None:
        self._ctx, self._curve = ctx, curve
        self._notes = RateLimitedLog(log)
        self._allowed: frozenset[bytes] = frozenset()
        self._handler: _ZapHandler | None = None
        self.admitted = 0
        self.refused = 0

    def __enter__(self) -> Authenticator:
        if self._curve is None:
            return self
        self._allowed = allowed_keys(self._curve.folder)
        # A shadow of the stage's context: the ZAP thread's sockets stay out of the stage's
        # Context.destroy(), which would close them under the thread's feet.
        handler = _ZapHandler(zmq.Context.shadow(self._ctx.underlying), self)
        handler.configure_curve_callback(ZAP_DOMAIN, credentials_provider=handler)
        handler.start()
        self._handler = handler
        with _authenticated_lock:
            _authenticated.add(self._ctx.underlying)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._handler is not None:
            with _authenticated_lock:
                _authenticated.discard(self._ctx.underlying)
            self._handler.stop()
            self._handler = None

    def _decide(self, address: str, key: bytes) -> bool:
        """Called on the ZAP thread for each client that passed the handshake's cryptography."""
        if key in self._allowed:
            self.admitted += 1
            return True
        self.refused += 1
        self._notes.warning("zap-refused", "refused a bus client at %s: its key %s is not a *.key in %s",
                            address, key.decode("ascii", "replace"), self._curve.folder if self._curve else "")
        return False


def authenticated(ctx: zmq.Context, curve: Curve | None) -> Authenticator:
    """``with authenticated(ctx, curve):`` around a stage's CURVE publishers (see Authenticator)."""
    return Authenticator(ctx, curve)


class _QuietLog:
    """pyzmq's authenticator logs every request at DEBUG: drop those, keep its errors rate-limited."""

    def __init__(self, notes: RateLimitedLog) -> None:
        self._notes = notes

    def debug(self, *args: object) -> None:
        pass

    def info(self, *args: object) -> None:
        pass

    def warning(self, message: str, *args: object) -> None:
        self._notes.warning("zap", "ZAP: " + message, *args)

    def error(self, message: str, *args: object) -> None:
        self._notes.log(logging.ERROR, "zap", "ZAP: " + message, *args)


class _ZapHandler(ThreadAuthenticator):
    """pyzmq's ZAP thread with the decision made by Authenticator, which also learns the client's address."""

    def __init__(self, ctx: zmq.Context, owner: Authenticator) -> None:
        super().__init__(ctx, log=_QuietLog(owner._notes))
        # Names of our own: pyzmq's Authenticator has attributes such as _allowed (IP addresses).
        self._camserver_owner, self._camserver_peer = owner, "?"

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._camserver_peer = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "?"
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:
        """The credentials provider pyzmq asks about each CURVE client's key (Z85)."""
        return self._camserver_owner._decide(self._camserver_peer, key)


def secure_server(sock: zmq.Socket, curve: Curve) -> None:
    """Make a publisher, before it binds, a CURVE server admitting clients through its context's Authenticator.

    RuntimeError (and the socket closed) when the context has none running: without ZAP any
    client knowing the public key would be admitted.
    """
    with _authenticated_lock:
        ready = sock.context.underlying in _authenticated
    if not ready:
        sock.close()
        raise RuntimeError("a CURVE publisher needs `with curve.authenticated(ctx, keys):` around it")
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    HandshakeWatch(sock, server=True).start()


def secure_client(sock: zmq.Socket, curve: Curve) -> None:
    """Make a subscriber, before it connects, a CURVE client taking messages only from a holder of the bus's secret."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, curve.public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
    HandshakeWatch(sock, server=False).start()
