"""CURVE for the bus: the installation's keys, who is admitted, and where a plain bus is allowed.

With a ``Curve`` (load_curve: the folder ``python -m pipeline.keys`` makes, see pipeline.keys
for the model) the bus is encrypted and both ends are authenticated: a publisher is the CURVE
server and admits, through ZAP (``authenticated``), only clients whose public key is a ``*.key``
in the folder; a subscriber accepts only a publisher holding the bus's secret key. Without one
the bus is plain ZMTP, which check_bind and check_connect allow only on this host. Handshakes
that fail (a stage without keys, a host with other keys, a stranger) are logged, one line per
kind and interval (RateLimitedLog): the person reading the log learns why frames do not arrive,
and a stranger hammering a port cannot flood it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from pipeline.keys import PUBLIC_FILE, SECRET_FILE
from pipeline.stage.ratelog import RateLimitedLog

ZAP_DOMAIN = "camserver"
KEYS_HINT = "python -m pipeline.keys DIR"
INSECURE_HINT = (f"make keys with {KEYS_HINT} and pass --curve-keys DIR (CAMSERVER_CURVE_KEYS) on every stage, "
                 f"or pass --insecure-bus")

log = logging.getLogger("camserver.bus")


@dataclass(frozen=True)
class Curve:
    """The bus's key pair (Z85 text, 40 bytes each) and the folder it was read from.

    ``folder`` is kept because the publishers' authenticator admits every ``*.key`` in it. The
    secret key is left out of the repr, so logging a configuration never prints it.
    """

    public: bytes
    secret: bytes = field(repr=False)
    folder: Path


def load_curve(folder: Path) -> Curve:
    """The bus's keys in ``folder``; OSError naming the file when one is missing, unreadable or malformed.

    Like ssh with a private key, a secret-key file that group or others may read is refused:
    the key in it may already be known to others, and the fix (chmod 600) is the user's to make.
    Every ``*.key`` is read too, so a malformed one fails the stage at start rather than the
    authenticator later.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OSError(f"no CURVE keys folder at {folder}: make one with python -m pipeline.keys {folder}")
    secret_path = folder / SECRET_FILE
    try:
        mode = secret_path.stat().st_mode
    except FileNotFoundError:
        raise OSError(f"no secret key {secret_path}: copy the whole keys folder from the host where "
                      f"{KEYS_HINT} made it") from None
    if mode & 0o077:
        raise OSError(f"{secret_path} is accessible by group or others (mode {mode & 0o777:04o}): "
                      f"run chmod 600 {secret_path}")
    public, secret = _read_key_file(secret_path)
    if secret is None:
        raise OSError(f"{secret_path} holds no secret-key: copy the keys folder again")
    if zmq.curve_public(secret) != public:
        raise OSError(f"{secret_path}: its public-key does not belong to its secret-key: copy the keys folder again")
    bus_public, _ = _read_key_file(folder / PUBLIC_FILE)
    if bus_public != public:
        raise OSError(f"{folder / PUBLIC_FILE} and {secret_path} hold different keys: copy the keys folder again")
    allowed_keys(folder)
    return Curve(public, secret, folder)


def allowed_keys(folder: Path) -> frozenset[bytes]:
    """The public keys (Z85) of every ``*.key`` in ``folder``: the clients a publisher admits."""
    try:
        paths = sorted(Path(folder).glob("*.key"))
    except OSError as exc:
        raise OSError(f"cannot list the keys folder {folder}: {exc.strerror or exc}") from None
    return frozenset(_read_key_file(path)[0] for path in paths)


_Z85_KEY = re.compile(b"[" + re.escape(z85.Z85CHARS) + b"]{40}")


def _read_key_file(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) of a pyzmq certificate, each checked to be a 32-byte key in Z85."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except FileNotFoundError:
        raise OSError(f"no key file {path}: copy the whole keys folder made by {KEYS_HINT}") from None
    except OSError as exc:
        if not path.exists():
            raise OSError(f"no key file {path}: copy the whole keys folder made by {KEYS_HINT}") from None
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise OSError(f"{path} holds no public-key: it is not a key file made by {KEYS_HINT}") from None
    for name, key in (("public-key", public), ("secret-key", secret)):
        if key is not None and not _is_z85_key(key):
            raise OSError(f"{path}: its {name} is not a 40-character Z85 CURVE key")
    return public, secret


def _is_z85_key(key: bytes) -> bool:
    if not _Z85_KEY.fullmatch(key):
        return False
    try:
        return len(z85.decode(key)) == 32
    except (KeyError, ValueError, struct.error):  # a group of five characters above 2**32
        return False


def is_local(endpoint: str, bind: bool) -> bool:
    """True if ``endpoint`` cannot carry the bus off this host; anything not known to be local is not.

    Local: ipc:// and inproc://, and tcp:// to 127.0.0.0/8, [::1] (also IPv4-mapped) or
    ``localhost``; on bind also a loopback interface by name (``lo``: ZeroMQ takes interface
    names on bind). A wildcard, a LAN address, another interface and any other host name are not,
    nor are other transports. For a connect with a source address (``SRC;HOST:PORT``) the
    destination counts.
    """
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rpartition(";")[2].rpartition(":")[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return bind and _is_loopback_interface(host)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _is_loopback_interface(name: str) -> bool:
    """True if ``name`` is a loopback network interface (Linux's /sys; elsewhere no name is)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name) or name in (".", ".."):
        return False
    try:
        flags = int(Path("/sys/class/net", name, "flags").read_text(), 16)
    except (OSError, ValueError):
        return False
    return bool(flags & 0x8)  # IFF_LOOPBACK


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


_SERVER_FAILURES = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "it does not use CURVE (a stage started without --curve-keys?)",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "its keys are not this bus's (a host with another keys folder?)",
}
_CLIENT_FAILURES = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        "the publisher there does not use CURVE (started without --curve-keys?)",
}
_CLIENT_FAILURE = "the publisher there does not hold this bus's secret key (another keys folder?) or no CURVE at all"


class _HandshakeWatch(threading.Thread):
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
    _HandshakeWatch(sock, server=True).start()


def secure_client(sock: zmq.Socket, curve: Curve) -> None:
    """Make a subscriber, before it connects, a CURVE client taking messages only from a holder of the bus's secret."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, curve.public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
    _HandshakeWatch(sock, server=False).start()
