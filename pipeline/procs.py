"""The processes a config file asks for on this host, as a Procfile, a supervisord config or systemd units.

    python -m pipeline.procs --config camserver.toml                    # a Procfile, for honcho
    python -m pipeline.procs --config camserver.toml --format supervisor > camserver.conf
    python -m pipeline.procs --config camserver.toml --format systemd --output units/
    python -m pipeline.procs --format systemd --output units/          # one camera, configured by .env

One capture process per local camera, so that each camera fails and restarts alone, and one
detector, recorder, gateway and logger for all of them (each learns the cameras from the stream),
plus the optional hooks and mqtt stages when the file configures them (a hook, a webhook,
``mqtt_host``). The file's ``stages`` lists what this host runs instead (a Pi that only captures:
["capture"]).
The shipped Procfile and supervisor.conf are the templates: a process is its template's command
with ``--config FILE`` (and ``--camera ID``) added, so the two ways of running never drift apart.
``./run`` writes the supervisord form by itself when CAMSERVER_CONFIG names a file.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from pipeline.config.file import STAGES
from pipeline.config.loading import load_file
from pipeline.config.options import ENV_PREFIX, ConfigError

REPO = Path(__file__).resolve().parent.parent
# Reading camserver's own files as templates: a line "name: command" of the Procfile, a [section] of supervisor.conf.
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
SECTION = re.compile(r"^\[([^\]]+)\]\s*$")


class Process(NamedTuple):
    """One process to run: its name (``capture-porch``), its stage and the arguments it adds to its template."""

    name: str
    stage: str
    args: tuple[str, ...]


def processes(path: Path | None) -> list[Process]:
    """The processes the config file at ``path`` asks this host to run; ConfigError for a bad file.

    Without a file, the shipped six of one camera, configured by variables as ``./run`` runs them.
    """
    if path is None:
        return [Process(stage, stage, ()) for stage in STAGES]
    settings = load_file(path)
    file, where = settings.file, str(path.resolve())
    found = []
    for stage in file.stages_here:
        if stage == "capture" and file.cameras:
            found += [Process(f"capture-{camera}", "capture", ("--config", where, "--camera", camera))
                      for camera in file.local_cameras]
        else:  # a shared stage, or the one capture of a file without [cameras.ID] tables
            found.append(Process(stage, stage, ("--config", where)))
    return found


def procfile(found: Sequence[Process], template: str) -> str:
    """Procfile lines, each its stage's template line with the process's arguments added."""
    commands = {match[1]: match[2] for match in map(PROCFILE_LINE.match, template.splitlines()) if match}
    return "".join(f"{p.name}: {' '.join((_template(commands, p.stage), *p.args))}\n" for p in found)


def supervisor(found: Sequence[Process], template: str, here: Path) -> str:
    """supervisord's config: the template's own sections, then one [program:...] per process from its stage's.

    ``%(here)s`` is resolved to the folder of the template, since the generated file lives elsewhere.
    """
    sections = _sections(template.replace("%(here)s", str(here)))
    text = "".join(_section(name, body) for name, body in sections.items() if not name.startswith("program:"))
    for p in found:
        body = _program(sections, p.stage)
        body["command"] = " ".join((body["command"], *p.args))
        text += _section(f"program:{p.name}", body)
    return text


def systemd(found: Sequence[Process], template: str, here: Path, user: str) -> dict[str, str]:
    """Unit files by name: a camserver.target and one service per process, part of it and restarted when it exits.

    Each reads the repository's ``.env`` as ./run does (systemd's EnvironmentFile; missing is fine).
    """
    sections = _sections(template.replace("%(here)s", str(here)))
    units = {"camserver.target": (
        "[Unit]\nDescription=camserver, every process of this host\n\n[Install]\nWantedBy=multi-user.target\n")}
    for p in found:
        program = _program(sections, p.stage)
        units[f"camserver-{p.name}.service"] = (
            f"[Unit]\nDescription=camserver {p.name}\nPartOf=camserver.target\nAfter=network-online.target\n"
            f"Wants=network-online.target\n\n"
            f"[Service]\nUser={user}\nWorkingDirectory={program['directory']}\n"
            f"Environment=PYTHONUNBUFFERED=1\nEnvironmentFile=-{program['directory']}/.env\n"
            f"ExecStart={' '.join((program['command'], '--no-log-time', *p.args))}\n"
            f"Restart=always\nRestartSec=1\nKillSignal=SIGTERM\nTimeoutStopSec=5\n\n"
            f"[Install]\nWantedBy=camserver.target\n")
    return units


def _template(commands: dict[str, str], stage: str) -> str:
    """A stage's command line; an optional stage (hooks, mqtt) takes the logger's, another subscriber."""
    return commands.get(stage) or commands["logger"].replace("pipeline.logger", f"pipeline.{stage}")


def _program(sections: dict[str, dict[str, str]], stage: str) -> dict[str, str]:
    """A stage's supervisord settings, an optional stage taking the logger's (see _template)."""
    if f"program:{stage}" in sections:
        return dict(sections[f"program:{stage}"])
    body = dict(sections["program:logger"])
    body["command"] = body["command"].replace("pipeline.logger", f"pipeline.{stage}")
    return body


def _sections(text: str) -> dict[str, dict[str, str]]:
    """An ini file's sections as ordered key/value pairs, comments dropped (configparser would interpolate)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if match := SECTION.match(line):
            current = sections.setdefault(match[1], {})
        elif current is not None and "=" in line and not line.lstrip().startswith(";"):
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def _section(name: str, body: dict[str, str]) -> str:
    return f"[{name}]\n" + "".join(f"{key}={value}\n" for key, value in body.items()) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.procs", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="FILE", help="the TOML file (default: env CAMSERVER_CONFIG)")
    parser.add_argument("--format", choices=("procfile", "supervisor", "systemd"), default="procfile")
    parser.add_argument("--output", metavar="DIR", type=Path, help="systemd: the folder to write the units to")
    args = parser.parse_args(argv)
    path = args.config or os.environ.get(ENV_PREFIX + "CONFIG")
    try:
        found = processes(Path(path) if path else None)
    except ConfigError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if args.format == "procfile":
        sys.stdout.write(procfile(found, (REPO / "Procfile").read_text()))
    elif args.format == "supervisor":
        sys.stdout.write(supervisor(found, (REPO / "supervisor.conf").read_text(), REPO))
    else:
        if args.output is None:
            parser.error("--format systemd writes several files: give --output DIR")
        args.output.mkdir(parents=True, exist_ok=True)
        for name, text in systemd(found, (REPO / "supervisor.conf").read_text(), REPO, getpass.getuser()).items():
            (args.output / name).write_text(text)
            print(args.output / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
