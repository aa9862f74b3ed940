"""Recordings folders: recordings made for a test, the temporary files a writer leaves, a disk to fill."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.record.library import Library, recording_name
from tests.support.ports import Ports

TEMPORARY = (".part", ".salvage", ".tmp")  # what the recorder and the library write before renaming


def prepare(ports: Ports, starts: list[float], camera: str = "cam0") -> list[str]:
    """Recordings with the given start times (their video is a stand-in: the API only lists files)."""
    library = Library(ports.recordings)
    ports.recordings.mkdir(exist_ok=True)
    names = []
    for start in starts:
        name = recording_name(camera, start)
        part = library.part_path(name)
        part.write_bytes(b"\0" * 1000)
        library.publish(name, part, b"\xff\xd8\xff\xd9", {"camera": camera, "start": start, "duration": 3.0,
                                                         "cut_short": False})
        names.append(name)
    return names


def files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def temporary_files(root: Path) -> list[str]:
    return [name for name in files(root) if any(marker in name for marker in TEMPORARY)]


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(TEMPORARY)] if folder.exists() else []


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "600k") -> Iterator[Path]:
    """A real filesystem of ``size`` at ``path``, to fill up; skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                 capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        pytest.skip("no mount command to make a small disk with")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazy: a file a failed test left open must not keep the mount, and this test's folder, around.
        subprocess.run(["umount", "--lazy", str(path)], check=True, timeout=10)


def fill(disk: Path, leave: int = 0) -> int:
    """Take all but ``leave`` bytes of the free space with a file of its own; its size."""
    st = os.statvfs(disk)
    with (disk / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):  # ENOSPC: full
        filler.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return (disk / "filler").stat().st_size
