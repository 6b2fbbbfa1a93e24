"""A tiny task for the tests of trackers and of the host itself: fit y = 3x + noise by gradient
descent, in plain Python (no data to ship, no torch, well under a second a run).

It is not installed as a plugin: the pytest kit's ``demo_task`` fixture registers it in a test's
sandbox. It goes through every part of the contract a real task does: a params model, a human
baseline, three stages with declared params and inputs, per-epoch metrics, an artifact, the report.
"""

from __future__ import annotations

import json
import math
import random

from pydantic import Field

from orchestrator.hookspecs import hookimpl
from orchestrator.params import Params
from orchestrator.task import SPLITS, Artifact, HumanBaseline, Stage, Task


class DemoParams(Params):
    seed: int = 0
    n: int = Field(200, gt=10, description="points generated")
    noise: float = Field(0.1, ge=0, description="standard deviation of the noise on y: the Bayes error")
    shift: float = Field(0.0, description="dev inputs are shifted by this much: data mismatch")
    lr: float = Field(0.1, gt=0)
    epochs: int = Field(5, gt=0)


def prepare(ctx) -> dict:
    p = ctx.params
    rng = random.Random(p.seed)
    rows = [(x, 3 * x + rng.gauss(0, p.noise)) for x in (rng.uniform(-1, 1) for _ in range(p.n))]
    cut1, cut2 = int(0.6 * p.n), int(0.8 * p.n)
    data = {"train": rows[:cut1], "train_dev": rows[cut1:cut2],
            "val": [(x + p.shift, 3 * (x + p.shift) + rng.gauss(0, p.noise)) for x, _ in rows[cut2:]]}
    (ctx.out_dir / "data.json").write_text(json.dumps(data))
    return {"n_rows": p.n}


def rmse(w: float, rows) -> float:
    return math.sqrt(sum((w * x - y) ** 2 for x, y in rows) / len(rows)) if abs(w) < 1e6 else float("nan")


def gradient_step(w: float, rows, lr: float) -> float:
    """One step of gradient descent on the mean squared error of y = w x."""
    return w - lr * 10 * sum(2 * (w * x - y) * x for x, y in rows) / len(rows)


def train(ctx) -> dict:
    p = ctx.params
    data = json.loads((ctx.input_dir("prepare") / "data.json").read_text())
    w = 0.0
    for epoch in range(p.epochs):
        w = gradient_step(w, data["train"], p.lr)
        val = rmse(w, data["val"])
        ctx.log_epoch(epoch, {"train_loss": rmse(w, data["train"]) ** 2, "val_loss": val ** 2, "val_rmse": val})
    (ctx.out_dir / "w.json").write_text(json.dumps({"w": w}))
    return {f"{s}_rmse": rmse(w, data[s]) for s in SPLITS} | {"weight": w}


def report(ctx) -> dict:
    ctx.bias_variance_report()
    return {}


TASK = Task(
    name="demo",
    description="Fit y = 3x + noise by gradient descent (the pytest kit's demo task)",
    params_model=DemoParams,
    metric="rmse",
    human=HumanBaseline(0.1, "the generator's noise standard deviation: no fit of y can do better"),
    stages=(
        Stage("prepare", prepare, ("n", "noise", "shift")),
        Stage("train", train, ("lr", "epochs"), inputs=("prepare",), tracked=True),
        Stage("report", report, inputs=("prepare", "train")),
    ),
    artifacts=(Artifact("w.json", "model", "train", "the fitted weight"),),
    space={"lr": {"low": 1e-3, "high": 0.5, "scale": "log"}},
)


class DemoPlugin:
    @hookimpl
    def orch_register_tasks(self) -> list[Task]:
        return [TASK]
