"""The hook reference of docs/writing-plugins.md, generated from ``orchestrator/hookspecs.py``: each
hook's signature, whether the first answer wins, and its docstring, under the section comments of
the hookspecs module. ``python -m orchestrator.hookdoc [--check] [FILE]`` rewrites (or checks) the
part of FILE between the two markers; a test fails when it is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from orchestrator import hookspecs

BEGIN = ("<!-- the hook reference: generated from orchestrator/hookspecs.py by `python -m orchestrator.hookdoc`; "
         "edit the hookspecs, not this -->")
END = "<!-- end of the generated hook reference -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"
SECTION = re.compile(r"^# -- (.+?) -+$", re.M)


def signature(fn) -> str:
    return f"{fn.__name__}{inspect.signature(fn)}".replace("'", "")


def render() -> str:
    """The reference: a ``###`` heading per section of hookspecs.py, a ``####`` per hook in order."""
    source = inspect.getsource(hookspecs)
    sections = [(m.start(), m.group(1)) for m in SECTION.finditer(source)]
    hooks = sorted(((source.index(f"\ndef {name}("), fn) for name, fn in vars(hookspecs).items()
                    if name.startswith("orch_") and callable(fn)), key=lambda pair: pair[0])
    lines, current = [], None
    for at, fn in hooks:
        section = next((title for start, title in reversed(sections) if start < at), "hooks")
        if section != current:
            lines += [f"### {section[0].upper()}{section[1:]}", ""]
            current = section
        first = " (firstresult: the first answer that is not None wins)" if _opts(fn).get("firstresult") else ""
        lines += [f"#### `{signature(fn)}`{first}", "", inspect.getdoc(fn), ""]
    return "\n".join(lines).rstrip() + "\n"


def _opts(fn) -> dict:
    return getattr(fn, f"{hookspecs.NAME}_spec", None) or {}


def updated(text: str) -> str:
    """``text`` with the part between the markers replaced by ``render()``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the markers are missing: {BEGIN} ... {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{render()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    path = Path(next((a for a in argv if a != "--check"), DOC))
    text = path.read_text(encoding="utf-8")
    new = updated(text)
    if check:
        if new != text:
            print(f"{path}: the hook reference is stale; run `python -m orchestrator.hookdoc`", file=sys.stderr)
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    print(f"wrote the hook reference of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
