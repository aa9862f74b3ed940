"""The bus's CURVE keys on disk: the key pair a stage uses and the public keys a publisher admits.

The folder is the one ``python -m pipeline.keys`` makes (see pipeline/keys.py for the model). Every
file is checked when a stage starts, so a copied-wrong or world-readable key stops the stage with
one line naming the file and the fix, instead of a bus that silently carries nothing.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

from pipeline.keys import PUBLIC_FILE, SECRET_FILE

KEYS_HINT = "python -m pipeline.keys DIR"


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


