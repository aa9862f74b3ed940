"""Which Host headers the gateway answers: the defence against DNS rebinding.

A web page on ``evil.example`` can make its own name resolve to 127.0.0.1 or to the camera's LAN
address; the browser then lets that page read our answers, since to the browser they come from
``evil.example``. The request still says ``Host: evil.example``, so answering only the names we
know closes the hole, with or without a password.

Answered: loopback names and addresses, the address the client actually connected to (a phone
typing http://192.168.1.20:8100 — an attacker cannot make a browser send an IP literal for a name
it controls), this machine's own name and ``NAME.local`` (what a Raspberry Pi is reached by), the
``--host`` it listens on, and every name given with ``--allowed-hosts`` (a DNS name, a reverse
proxy's public name).
"""

from __future__ import annotations

import ipaddress
import socket

from pipeline.config.options import Config


def _plain(host: str) -> str:
    """A Host header's name without port, brackets, trailing dot or case."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address, with IPv4-mapped IPv6 (a dual-stack socket's view of IPv4) as plain IPv4."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback addresses; any other name counts as the network."""
    host = _plain(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


class HostPolicy:
    """Decides per request whether its Host header names this server."""

    def __init__(self, cfg: Config) -> None:
        machine = socket.gethostname().lower()
        names = {machine, f"{machine}.local", *cfg.allowed_hosts}
        if cfg.host not in ("0.0.0.0", "::", ""):
            names.add(cfg.host)
        self.names = frozenset(_plain(name) for name in names)

    def allows(self, host_header: str, local_address: str | None) -> bool:
        host = _plain(host_header)
        if host in self.names or is_loopback(host):
            return True
        local = None if local_address is None else _address(local_address)
        return local is not None and _address(host) == local
