"""``orch new plugin NAME``: a pip-installable plugin package, written from the templates beside
this module (``templates/task``, ``templates/tracker``).

A template file's path and text may hold ``{{name}}`` (the plugin and task name), ``{{Name}}``
(its CamelCase), ``{{package}}`` (``orch_<name>``), ``{{dist}}`` (``orch-<name>``),
``{{description}}`` and ``{{orch_version}}``; files end in ``.tmpl`` so that no tool takes them
for the host's own code.
"""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.errors import UserError

TEMPLATES = Path(__file__).with_name("templates")
KINDS = ("task", "tracker")
NAME = re.compile(r"[a-z][a-z0-9_]*")
DESCRIPTIONS = {"task": "A classifier of points inside a circle, on data it generates",
                "tracker": "A tracker that writes each lifecycle event as a line of a log"}


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def values_for(name: str, kind: str) -> dict[str, str]:
    from orchestrator import __version__

    return {"name": name, "Name": "".join(part.title() for part in name.split("_")), "package": f"orch_{name}",
            "dist": f"orch-{name.replace('_', '-')}", "description": DESCRIPTIONS[kind],
            "orch_version": __version__}


def check_name(name: str, taken: set[str]) -> None:
    """A plugin name is a lowercase identifier that no installed plugin or task has."""
    if not NAME.fullmatch(name):
        raise UserError(f"plugin name {name!r}: expected a lowercase identifier (letters, digits, _), like 'mytask'")
    if name in taken:
        raise UserError(f"plugin name {name!r}: a plugin or task of that name is installed already "
                        "(`orch plugins`, `orch tasks`)")


def write_plugin(name: str, kind: str, folder: Path) -> list[Path]:
    """Write the ``kind`` template for ``name`` into ``folder`` (new or empty); the files written.
    Nothing is written when the folder holds anything."""
    if kind not in KINDS:
        raise UserError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder}: exists and is not an empty folder; choose another --dir")
    values = values_for(name, kind)
    written = []
    source = TEMPLATES / kind
    for template in sorted(p for p in source.rglob("*.tmpl") if p.is_file()):
        target = folder / render(str(template.relative_to(source)), values).removesuffix(".tmpl")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        written.append(target)
    return written
