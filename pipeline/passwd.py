"""Password hashes for the gateway's login, and the command that makes one.

    python -m pipeline.passwd > ~/.camserver-password     # asks twice, prints one line
    python -m pipeline.passwd -o ~/.camserver-password     # the same, written with mode 0600

The line is ``scrypt$N$r$p$SALT$HASH`` (base64): scrypt from Python's own hashlib, a memory-hard
KDF, so a stolen file costs an attacker ~16 MiB and tens of milliseconds per guess, and the
gateway needs no third-party crypto library. Verification compares digests in constant time.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

SCHEME = "scrypt"
# 2**14 x 8 x 1: the cost OWASP lists for scrypt; 16 MiB of memory, ~50 ms on the 2-core x86 build machine.
COST_N, COST_R, COST_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_COST_N = 2**20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=n * r * 129 + 1024 * 1024)


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` in the one-line format this module reads back."""
    salt = secrets.token_bytes(SALT_BYTES)
    return "$".join((SCHEME, str(COST_N), str(COST_R), str(COST_P), _b64(salt),
                     _b64(_derive(password, salt, COST_N, COST_R, COST_P))))


def check_hash(line: str) -> str:
    """``line`` stripped if it is a hash this module made; ValueError (without the line) if not."""
    line = line.strip()
    fields = line.split("$")
    try:
        scheme, n, r, p, salt, key = fields
        ok = (scheme == SCHEME and 2 <= int(n) <= MAX_COST_N and int(n) & (int(n) - 1) == 0
              and 1 <= int(r) <= 32 and 1 <= int(p) <= 16
              and len(base64.b64decode(salt, validate=True)) >= 8
              and len(base64.b64decode(key, validate=True)) == KEY_BYTES)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("is not a password hash made by `python -m pipeline.passwd`")
    return line


def verify(stored: str, password: str) -> bool:
    """True if ``password`` matches the hash ``stored`` (already checked by check_hash)."""
    _, n, r, p, salt, key = stored.split("$")
    derived = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(derived, base64.b64decode(key))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.passwd",
        description="Make the password hash that --password-file / CAMSERVER_PASSWORD_FILE reads.",
        epilog="Without a terminal the password is read from the first line of standard input.",
    )
    parser.add_argument("-o", "--output", type=Path, help="write the hash to this file (mode 0600) "
                        "instead of printing it")
    args = parser.parse_args(argv)
    if sys.stdin.isatty():
        password = getpass.getpass("New camserver password: ")
        if password != getpass.getpass("Again: "):
            print("pipeline.passwd: error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("pipeline.passwd: error: the password must not be empty", file=sys.stderr)
        return 2
    line = hash_password(password) + "\n"
    if args.output is None:
        sys.stdout.write(line)
        return 0
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(line)
    os.chmod(args.output, 0o600)
    print(f"wrote the hash to {args.output}; start the gateway with --password-file {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
