"""ZeroMQ endpoints: their one grammar, read by the options and by the check that the bus stays on this host.

An option such as ``--frames`` is checked with it at start-up, and is_local reads the host from
the same parse, so what the config accepts and what the CURVE rule judges can never disagree.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import NamedTuple

# tcp://HOST:PORT, HOST being * (every interface), [IPv6], an IPv4 address, a name or an interface
_TCP = re.compile(r"tcp://(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d+)")
# ipc:// and inproc:// name a path or a name; inproc is for one process, so no option takes it
_LOCAL = re.compile(r"(ipc|inproc)://(.+)")


class Endpoint(NamedTuple):
    """One endpoint, read: its transport (tcp, ipc or inproc), host (tcp, without brackets) and port."""

    transport: str
    host: str = ""
    port: int = 0


def parse_endpoint(text: str) -> Endpoint:
    """The endpoint ``text`` names; ValueError for anything but tcp://HOST:PORT, ipc://PATH and inproc://NAME."""
    tcp = _TCP.fullmatch(text)
    if tcp and 1 <= int(tcp.group(2)) <= 65535:
        return Endpoint("tcp", tcp.group(1).removeprefix("[").removesuffix("]"), int(tcp.group(2)))
    local = _LOCAL.fullmatch(text)
    if local:
        return Endpoint(local.group(1))
    raise ValueError(f"{text!r} is not tcp://HOST:PORT (port 1-65535) or ipc://PATH")


def parse_endpoints(text: str) -> tuple[str, ...]:
    """Comma-separated endpoints of an option, so one subscriber can listen to several cameras."""
    endpoints = tuple(part.strip() for part in text.split(",") if part.strip())
    if not endpoints:
        raise ValueError("expected at least one endpoint such as tcp://127.0.0.1:5555")
    for endpoint in endpoints:
        if parse_endpoint(endpoint).transport == "inproc":
            raise ValueError(f"{endpoint!r} is not tcp://HOST:PORT (port 1-65535) or ipc://PATH")
    return endpoints


def is_local(endpoint: str, bind: bool) -> bool:
    """True if ``endpoint`` cannot carry the bus off this host; anything not known to be local is not.

    Local: ipc:// and inproc://, and tcp:// to 127.0.0.0/8, [::1] (also IPv4-mapped) or
    ``localhost``; on bind also a loopback interface by name (``lo``: ZeroMQ takes interface
    names on bind). A wildcard, a LAN address, another interface, any other host name and
    anything that is not an endpoint of the grammar above are not.
    """
    try:
        parsed = parse_endpoint(endpoint)
    except ValueError:
        return False
    if parsed.transport != "tcp":
        return True
    if parsed.host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(parsed.host)
    except ValueError:
        return bind and _is_loopback_interface(parsed.host)
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
