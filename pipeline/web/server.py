"""The HTTP server around the application: timeouts, connection limits and TLS.

A flood of idle or half-open connections must cost the gateway little and never take it down:

- Tornado's header timeout (``IDLE_TIMEOUT_S``) is a deadline set when it starts reading a request's
  headers, not reset by each byte that arrives, so a client that trickles its headers is cut off in
  time; the same deadline closes idle keep-alive connections. Bodies have their own deadline.
- Open connections are capped in total and per client address; one over a cap is closed at once.
- When the process runs out of file descriptors, Tornado's accept loop would fail on every turn of
  the event loop, spin at 100 % CPU and log a traceback each time; this server pauses accepting
  instead, as nginx does, and says so once per interval.

Every warning here is one an attacker can repeat at will, and so are Tornado's own lines about bad
requests: all go through a RateLimitedLog.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import socket
import ssl
import typing
from collections.abc import Callable, Iterable
from typing import Any

import tornado.httpserver
import tornado.web
from tornado.http1connection import HTTP1ServerConnection
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, SSLIOStream

from pipeline.config.options import Config, ConfigError
from pipeline.stage.ratelog import RateLimitedLog

# Headers must arrive, and an idle keep-alive connection is closed, within this many seconds.
IDLE_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 64 * 1024  # the only request bodies are login forms
MAX_HEADER_BYTES = 16 * 1024
# Descriptors kept out of --max-connections for the rest of the process: ZeroMQ, recordings being served, logs.
FD_RESERVE = 64
# How long accepting stops when descriptors run out: long enough not to spin, short enough to go unnoticed.
ACCEPT_PAUSE_S = 0.25
# Connections accepted per readiness event, as Tornado does, so that a flood cannot starve the event loop.
ACCEPT_BATCH = 128
# accept() errors that mean "no resources now" rather than "this connection is bad": retrying at once cannot help.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
REFUSAL_BODY = b"too many connections\n"
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(REFUSAL_BODY), REFUSAL_BODY))

log = logging.getLogger("camserver.gateway")


class ConnectionCount:
    """Open connections in total and per client address, and whether one more may open."""

    def __init__(self, limit: int, per_client: int) -> None:
        self.limit, self.per_client = limit, per_client
        self.total = 0
        self._by_client: dict[str, int] = {}

    def of(self, client: str) -> int:
        return self._by_client.get(client, 0)

    def refusal(self, client: str) -> str | None:
        """The cap that one more connection from ``client`` would break, or None when it may open."""
        if self.of(client) >= self.per_client:
            return "per-client"
        if self.total >= self.limit:
            return "total"
        return None

    def add(self, client: str) -> None:
        self.total += 1
        self._by_client[client] = self.of(client) + 1

    def remove(self, client: str) -> None:
        self.total -= 1
        left = self.of(client) - 1
        if left:
            self._by_client[client] = left
        else:
            del self._by_client[client]  # so that the table does not grow with every address ever seen


class Acceptor:
    """Accepts connections on one listening socket like Tornado's ``add_accept_handler``, but survives
    running out of descriptors: the socket stays readable then, so retrying at once would spin."""

    def __init__(self, sock: socket.socket, on_connection: Callable[[socket.socket, Any], None],
                 on_shortage: Callable[[OSError], None]) -> None:
        self._sock, self._on_connection, self._on_shortage = sock, on_connection, on_shortage
        self._loop = IOLoop.current()
        self._resume: object | None = None
        self._loop.add_handler(sock, self._accept, IOLoop.READ)

    def _accept(self, _fd: object, _events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, address = self._sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    raise
                self._pause(exc)
                return
            self._on_connection(connection, address)

    def _pause(self, exc: OSError) -> None:
        self._on_shortage(exc)
        self._loop.remove_handler(self._sock)
        self._resume = self._loop.call_later(ACCEPT_PAUSE_S, self._unpause)

    def _unpause(self) -> None:
        self._resume = None
        self._loop.add_handler(self._sock, self._accept, IOLoop.READ)

    def stop(self) -> None:
        """Stop accepting for good, whether paused or not."""
        if self._resume is None:
            self._loop.remove_handler(self._sock)
        else:
            self._loop.remove_timeout(self._resume)
            self._resume = None


class CappedHTTPServer(tornado.httpserver.HTTPServer):
    """An HTTPServer that caps open connections and pauses accepting when descriptors run out.

    A connection counts from ``handle_stream`` until its socket is closed. Tornado reports the end of
    an HTTP connection through ``on_close``; a WebSocket, though, takes the socket over and ends the
    HTTP connection while the socket stays open, so such sockets are kept aside and counted until a
    later check finds them closed.
    """

    def initialize(self, *args: Any, limit: int, per_client: int, notes: RateLimitedLog, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._count = ConnectionCount(limit, per_client)
        self._notes = notes
        self._clients: dict[IOStream, str] = {}
        self._taken_over: set[IOStream] = set()

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """As TCPServer.add_sockets, with an Acceptor in place of Tornado's accept handler."""
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = Acceptor(sock, self._handle_connection, self._out_of_resources).stop

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        client = str(address[0])
        self._forget_closed_takeovers()
        cap = self._count.refusal(client)
        if cap is not None:
            self._refuse(stream, client, cap)
            return
        self._count.add(client)
        self._clients[stream] = client
        super().handle_stream(stream, address)

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        stream = typing.cast(HTTP1ServerConnection, server_conn).stream
        if stream.closed():
            self._release(stream)
        else:
            self._taken_over.add(stream)

    def _forget_closed_takeovers(self) -> None:
        closed = [stream for stream in self._taken_over if stream.closed()]
        for stream in closed:
            self._taken_over.discard(stream)
            self._release(stream)

    def _release(self, stream: IOStream) -> None:
        self._count.remove(self._clients.pop(stream))

    def _refuse(self, stream: IOStream, client: str, cap: str) -> None:
        """Close at once; a plain-HTTP client is told 503 if its socket takes it without waiting."""
        if not isinstance(stream, SSLIOStream):
            with contextlib.suppress(OSError):
                stream.socket.send(REFUSAL)
        stream.close()
        if cap == "per-client":
            self._notes.warning("refused-per-client", "refused a connection from %s: %d already open from that "
                                "address (--max-connections-per-client %d)", client, self._count.of(client),
                                self._count.per_client)
        else:
            self._notes.warning("refused-total", "refused a connection from %s: %d connections open "
                                "(--max-connections %d)", client, self._count.total, self._count.limit)

    def _out_of_resources(self, exc: OSError) -> None:
        kind = "accept-" + errno.errorcode.get(exc.errno or 0, "?")
        self._notes.warning(kind, "cannot accept connections: %s (%d connections open); pausing accepts for %.2f s "
                            "at a time", exc.strerror, self._count.total, ACCEPT_PAUSE_S)


class TornadoRateLimit(logging.Filter):
    """Tornado's own lines below ERROR (malformed request, body timeout, failed TLS handshake, write error)
    are ones any client can repeat at will: they go through the rate limit, one kind per message format.
    Errors pass untouched, with their tracebacks: they are bugs to see."""

    def __init__(self, notes: RateLimitedLog) -> None:
        super().__init__()
        self._notes = notes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        self._notes.log(record.levelno, str(record.msg), record.getMessage())
        return False


def descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one and return it: every connection costs a
    descriptor, and the usual soft default of 1024 is far below what the system allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard


def fit_to_descriptors(max_connections: int, fd_limit: int) -> int:
    """``max_connections`` lowered so that connections cannot use up the descriptors the process needs."""
    if fd_limit == resource.RLIM_INFINITY or max_connections <= fd_limit - FD_RESERVE:
        return max_connections
    fitted = max(1, fd_limit - FD_RESERVE)
    log.warning("--max-connections %d lowered to %d: the process may open %d files, and keeps %d of them for "
                "other uses", max_connections, fitted, fd_limit, FD_RESERVE)
    return fitted


def listen(app: tornado.web.Application, port: int, host: str, ssl_options: ssl.SSLContext | None,
           max_connections: int, max_per_client: int) -> tornado.httpserver.HTTPServer:
    """Start serving ``app``; raises OSError when the address cannot be bound."""
    notes = RateLimitedLog(log)
    logging.getLogger("tornado.general").addFilter(TornadoRateLimit(notes))
    server = CappedHTTPServer(
        app, ssl_options=ssl_options, idle_connection_timeout=IDLE_TIMEOUT_S, body_timeout=BODY_TIMEOUT_S,
        max_body_size=MAX_BODY_BYTES, max_header_size=MAX_HEADER_BYTES,
        limit=fit_to_descriptors(max_connections, descriptor_limit()), per_client=max_per_client,
        notes=notes)
    server.listen(port, host)
    return server


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """HTTPS with --tls-cert and --tls-key, or None; ConfigError for a pair that does not load."""
    if cfg.tls_cert is None or cfg.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid --tls-cert/--tls-key ({cfg.tls_cert}, {cfg.tls_key}): {exc}") from None
    return context
