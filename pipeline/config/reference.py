"""Prints the options reference, docs/options.md, from the option table and the processes' option lists.

    python -m pipeline.config.reference > docs/options.md

The reference is never edited by hand: a test compares the committed file with what this prints,
so a default, a range or a description changed in pipeline/config/options.py fails the suite until
the reference is made again.
"""

from __future__ import annotations

import importlib

from pipeline.config.file import OPTIONAL_STAGES, STAGES
from pipeline.config.loading import CONFIG_HELP
from pipeline.config.options import ENV_PREFIX, OPTIONS, Option

PROCESSES = (*STAGES, *OPTIONAL_STAGES)

INTRO = f"""\
# Options

<!-- Made by `python -m pipeline.config.reference > docs/options.md` from pipeline/config/options.py:
     edit the table there, not this file (a test compares the two). -->

Every option is a flag, an environment variable and a key of the [config file](cameras.md): a flag
wins over the variable, which wins over the config file, which wins over the default.
`python -m pipeline.<stage> --help` lists the options of one stage. A bad value stops the stage at
start-up with one line naming the option and the value, and exit status 2, e.g.
`pipeline.capture: error: invalid {ENV_PREFIX}FPS value 'fast': expected a number`.

- Yes/no options take `true/false`, `yes/no`, `on/off` or `1/0`, and on the command line
  `--name` / `--no-name`.
- Endpoints are `tcp://HOST:PORT` or `ipc://PATH`, comma-separated where several are allowed. An
  endpoint beyond loopback needs `--curve-keys` ([cameras on other hosts](cameras.md)).
- Sizes are bytes or `500MB`, `5GB`; durations are seconds or `90m`, `12h`, `30d`, `1w`.
- *Per camera*: the option may be set in a `[cameras.ID]` table of the config file, for that camera alone.

| flag | variable | default | values | stages | per camera | meaning |
|---|---|---|---|---|---|---|
| `--config` | `{ENV_PREFIX}CONFIG` | none | a file | all | | {CONFIG_HELP} ([several cameras](cameras.md)) |
"""


def stages_of() -> dict[str, list[str]]:
    """Option name -> the processes that take it, from each process's OPTIONS."""
    found: dict[str, list[str]] = {name: [] for name in OPTIONS}
    for process in PROCESSES:
        for name in importlib.import_module(f"pipeline.{process}").OPTIONS:
            found[name].append(process)
    return found


def row(option: Option, stages: list[str]) -> str:
    flag = f"`{option.flag}` / `--no-{option.flag[2:]}`" if option.is_switch else f"`{option.flag}`"
    values = "yes/no" if option.is_switch else getattr(option.parse, "values", "")
    used = "all" if len(stages) == len(PROCESSES) else ", ".join(stages)
    meaning = option.help.replace("|", "\\|") + (f" ([more]({option.see}))" if option.see else "")
    cells = (flag, f"`{option.env}`", option.default_text, values, used, "yes" if option.camera else "", meaning)
    return "| " + " | ".join(cells) + " |"


def reference() -> str:
    stages = stages_of()
    return INTRO + "".join(row(option, stages[name]) + "\n" for name, option in OPTIONS.items())


if __name__ == "__main__":
    print(reference(), end="")
