"""The one way the benchmarks call the `orch` command: quiet, in a scratch project, with --set overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def orch(project: Path, args: list[str], sets: list[str], what: str) -> None:
    """Run ``orch --quiet ARGS --set S ...`` in ``project``; exit with its stderr if it fails."""
    cmd = [str(Path(sys.executable).parent / "orch"), "--quiet", *args]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{what}: orch {' '.join(args)} failed:\n{out.stderr[-3000:]}")
