"""Wall time of the full default pipeline (`dvc repro` in a fresh clone of HEAD) and of a second,
no-op `dvc repro`.

    python benchmarks/dvc_repro.py

Needs the project installed (`orch` and `dvc` on PATH). Writes benchmarks/results/dvc_repro.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - start, out.stdout


def main() -> None:
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        full, log = timed(["dvc", "repro"], clone, env)
        noop, noop_log = timed(["dvc", "repro"], clone, env)
        stages = [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")]
        metrics = json.loads((clone / "outputs" / "collab" / "train" / "metrics.json").read_text())
    result = {
        "command": "python benchmarks/dvc_repro.py",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "full_repro_seconds": round(full, 1), "stages_run": stages,
        "noop_repro_seconds": round(noop, 2), "noop_output": noop_log.strip().splitlines()[-1:],
        "collab_val_rmse": metrics["val_rmse"],
    }
    out = HERE / "results" / "dvc_repro.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
