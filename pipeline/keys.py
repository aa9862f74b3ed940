"""The CURVE key pair that encrypts and authenticates camserver's ZeroMQ bus, and the command that makes it.

    python -m pipeline.keys ~/.camserver-keys            # makes the folder (mode 0700) and the pair
    python -m pipeline.keys ~/.camserver-keys --force    # a new pair in place of the old one

The folder holds ``bus.key`` (the public key) and ``bus.key_secret`` (public and secret key, mode
0600), in pyzmq's certificate format (zmq.auth.create_certificates), so ZeroMQ's own tools read
them too. Every host of one installation shares this one pair, like a WireGuard pre-shared key:
the folder is copied whole to every host and every stage is pointed at it (--curve-keys DIR or
CAMSERVER_CURVE_KEYS). A publisher, which binds, is the CURVE server and holds the secret key; a
subscriber, which connects, is a CURVE client with the same pair and accepts only a publisher
that proves it holds the secret key, so a stranger's publisher on a stage's endpoint delivers
nothing. Publishers in turn admit only clients whose public key is a ``*.key`` file in the folder
(ZAP, pipeline.bus.curve.Authenticator). Every ``*.key`` there is admitted, so a host can later be
given a client pair of its own: put that pair's public ``NAME.key`` in the folder on the
publishing hosts and restart their stages. Whoever holds ``bus.key_secret`` can read and join
the bus: keep it as you would an ssh private key (pipeline.bus.keyfiles.load_curve refuses one that group
or others can read, as ssh does).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import zmq.auth

NAME = "bus"
PUBLIC_FILE = f"{NAME}.key"
SECRET_FILE = f"{NAME}.key_secret"


def make_keys(folder: Path, force: bool = False) -> tuple[Path, Path]:
    """Make the bus's key pair in ``folder``; FileExistsError if it holds one and not ``force``.

    The pair is written into a private temporary folder beside the final files and then moved
    into place, so the secret key is never readable by others, not even for a moment, and an
    interrupted run leaves either the old pair or the new one, never half of each.
    """
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        folder.chmod(0o700)  # mkdir's mode is masked by the umask
    elif not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    public, secret = folder / PUBLIC_FILE, folder / SECRET_FILE
    existing = [path for path in (public, secret) if path.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists: pass --force to replace the bus's keys (then copy the "
                              f"folder to every host again)")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".new-keys-") as scratch:
        made_public, made_secret = (Path(path) for path in zmq.auth.create_certificates(scratch, NAME))
        os.chmod(made_secret, 0o600)
        os.chmod(made_public, 0o644)
        os.replace(made_secret, secret)
        os.replace(made_public, public)
    return public, secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.keys",
        description="Make the CURVE key pair that encrypts and authenticates camserver's ZeroMQ bus "
                    "(read by --curve-keys / CAMSERVER_CURVE_KEYS).",
    )
    parser.add_argument("folder", type=Path, help="the folder to make (mode 0700) and write the pair into")
    parser.add_argument("--force", action="store_true", help="replace the pair the folder already holds")
    args = parser.parse_args(argv)
    folder = args.folder.expanduser().absolute()
    try:
        public, secret = make_keys(folder, args.force)
    except OSError as exc:
        print(f"pipeline.keys: error: {exc}", file=sys.stderr)
        return 1
    print(f"made the key pair of camserver's bus in {folder}:\n"
          f"  {public}  public key\n"
          f"  {secret}  secret key (mode 0600): whoever has it can read and join the bus\n"
          f"next:\n"
          f"  1. copy the whole folder to every host of the pipeline, keeping its modes, e.g.\n"
          f"       scp -rp {folder} HOST:{folder}\n"
          f"  2. start every stage on every host with --curve-keys {folder} (or CAMSERVER_CURVE_KEYS={folder})")
    if args.force:
        print("  3. restart every stage on every host: stages still on the old keys cannot talk to those on the new")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
