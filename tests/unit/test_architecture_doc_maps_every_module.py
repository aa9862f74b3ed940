"""docs/architecture.md names every module of pipeline/, and nothing that is not there: the map cannot go stale."""

from __future__ import annotations

import re

from tests.support.stages import REPO


def test_every_module_is_on_the_architecture_map_and_every_path_on_it_exists() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(pipeline/[\w/]+(?:\.py|/))`", text))
    modules = {str(path.relative_to(REPO)) for path in (REPO / "pipeline").rglob("*.py")
               if path.name != "__init__.py"}
    assert modules - named == set(), "modules missing from docs/architecture.md"
    assert [path for path in named if not (REPO / path).exists()] == [], "paths on the map that do not exist"
