"""The bias/variance report against a human baseline (Ng, "Machine Learning Yearning").

    avoidable bias = train error - human error
    variance       = train-dev error - train error
    data mismatch  = dev error - train-dev error

The largest gap, when it is larger than the tolerance, names the diagnosis and its next steps.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from orchestrator.task import HumanBaseline, TrialResult

NEXT_STEPS = {
    "high avoidable bias": [
        "train a bigger model (more factors, units or layers)",
        "train longer or with a better-tuned optimizer (learning rate, schedule)",
        "try a better architecture or better features",
        "reduce regularization (weight decay, dropout)",
    ],
    "high variance": [
        "add regularization (weight decay, dropout, data augmentation)",
        "get more training data",
        "use early stopping or a smaller model",
        "sweep the regularization params (orch sweep)",
    ],
    "data mismatch": [
        "study how the dev data differs from the training data (manual error analysis)",
        "make training data more like dev data (data synthesis, collecting matching data)",
        "reweight or add training examples drawn from the dev distribution",
    ],
    "near human level": [
        "gains now come slowly: analyse errors by hand to find what is left",
        "check the human baseline: a better human (or expert panel) error moves the target",
        "measure the test set once, to confirm dev performance carries over",
    ],
}


@dataclass
class BiasVarianceReport:
    task: str
    metric: str
    human_error: float
    human_source: str
    train_error: float
    train_dev_error: float
    dev_error: float
    tolerance: float
    avoidable_bias: float = field(init=False)
    variance: float = field(init=False)
    data_mismatch: float = field(init=False)
    diagnosis: str = field(init=False)
    next_steps: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.avoidable_bias = self.train_error - self.human_error
        self.variance = self.train_dev_error - self.train_error
        self.data_mismatch = self.dev_error - self.train_dev_error
        self.diagnosis = diagnose(self.avoidable_bias, self.variance, self.data_mismatch, self.tolerance)
        self.next_steps = NEXT_STEPS[self.diagnosis]

    @property
    def gaps(self) -> dict[str, float]:
        return {
            "avoidable_bias": self.avoidable_bias,
            "variance": self.variance,
            "data_mismatch": self.data_mismatch,
        }

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "BiasVarianceReport":
        """The report ``as_dict`` wrote (report.json); the derived fields are derived again."""
        from dataclasses import fields

        return cls(**{f.name: data[f.name] for f in fields(cls) if f.init})


def diagnose(avoidable_bias: float, variance: float, data_mismatch: float, tolerance: float) -> str:
    """The largest gap names the problem; when every gap is within tolerance, near human level."""
    gaps = {
        "high avoidable bias": avoidable_bias,
        "high variance": variance,
        "data mismatch": data_mismatch,
    }
    name, worst = max(gaps.items(), key=lambda kv: kv[1])
    return name if worst > tolerance else "near human level"


def build(
    task: str, metric: str, human: HumanBaseline, metrics: Mapping[str, float], tolerance: float | None = None
) -> BiasVarianceReport:
    """Read ``train_<metric>``, ``train_dev_<metric>`` and ``val_<metric>`` from a run's metrics."""
    keys = {"train": f"train_{metric}", "train_dev": f"train_dev_{metric}", "dev": f"val_{metric}"}
    missing = [k for k in keys.values() if k not in metrics]
    if missing:
        raise KeyError(f"metrics lack {', '.join(missing)}")
    tolerance = human.tolerance if tolerance is None else tolerance
    if tolerance is None:
        tolerance = 0.02 * max(abs(human.error), 1e-12) if human.error else 0.01
    return BiasVarianceReport(
        task=task,
        metric=metric,
        human_error=human.error,
        human_source=human.source,
        train_error=float(metrics[keys["train"]]),
        train_dev_error=float(metrics[keys["train_dev"]]),
        dev_error=float(metrics[keys["dev"]]),
        tolerance=tolerance,
    )


def _rows(r: BiasVarianceReport) -> list[tuple[str, float]]:
    return [
        ("human error (Bayes proxy)", r.human_error),
        ("train error", r.train_error),
        ("train-dev error", r.train_dev_error),
        ("dev error", r.dev_error),
        ("avoidable bias = train - human", r.avoidable_bias),
        ("variance = train-dev - train", r.variance),
        ("data mismatch = dev - train-dev", r.data_mismatch),
    ]


def _notes(r: BiasVarianceReport) -> list[str]:
    if r.avoidable_bias < -r.tolerance:
        return [f"Note: train error is {-r.avoidable_bias:.4f} below human level: the model fits noise in the "
                "training set that no one could predict, a sign of overfitting."]
    return []


def to_markdown(r: BiasVarianceReport, chart: str | None = None) -> str:
    lines = [
        f"# Bias/variance report: {r.task}",
        "",
        f"Metric: `{r.metric}` (lower is better). Human baseline: {r.human_source}",
        "",
        f"| quantity | {r.metric} |",
        "|---|---:|",
        *(f"| {name} | {value:.4f} |" for name, value in _rows(r)),
        "",
        f"**Diagnosis: {r.diagnosis}** (gaps under {r.tolerance:.4f} count as negligible).",
        "",
        *(line for note in _notes(r) for line in (note, "")),
        "Next steps:",
        *(f"- {step}" for step in r.next_steps),
    ]
    if chart:
        lines += ["", f"![errors and gaps]({chart})"]
    return "\n".join(lines) + "\n"


def to_html(r: BiasVarianceReport, chart: str | None = None) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(name)}</td><td class=num>{value:.4f}</td></tr>" for name, value in _rows(r))
    notes = "".join(f"<p>{e(note)}</p>" for note in _notes(r))
    steps = "".join(f"<li>{e(step)}</li>" for step in r.next_steps)
    image = f'<img src="{e(chart)}" alt="errors and gaps" width="720">' if chart else ""
    style = ("body{font-family:sans-serif;max-width:760px;margin:2em auto}td,th{padding:2px 12px}"
             ".num{text-align:right;font-variant-numeric:tabular-nums}")
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{e(r.task)}: bias/variance report</title>"
        f"<style>{style}</style></head><body><h1>Bias/variance report: {e(r.task)}</h1>"
        f"<p>Metric: <code>{e(r.metric)}</code> (lower is better). Human baseline: {e(r.human_source)}</p>"
        f"<table><tr><th>quantity</th><th>{e(r.metric)}</th></tr>{rows}</table>"
        f"<p><b>Diagnosis: {e(r.diagnosis)}</b> (gaps under {r.tolerance:.4f} count as negligible).</p>"
        f"{notes}<p>Next steps:</p><ul>{steps}</ul>{image}</body></html>\n"
    )


def plot(r: BiasVarianceReport, path: Path) -> Path:
    """Bars of the four errors beside bars of the three gaps."""
    from orchestrator.plots import pyplot, save_figure

    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [4, 3]})
    names = ["human", "train", "train-dev", "dev"]
    values = [r.human_error, r.train_error, r.train_dev_error, r.dev_error]
    bars = ax1.bar(names, values, color=["#888888", "#1f77b4", "#ff7f0e", "#d62728"])
    ax1.bar_label(bars, fmt="%.3f")
    ax1.set_ylabel(r.metric)
    ax1.set_title("errors")
    gap_names = ["avoidable\nbias", "variance", "data\nmismatch"]
    gap_values = [r.avoidable_bias, r.variance, r.data_mismatch]
    colors = ["#d62728" if g > r.tolerance else "#2ca02c" for g in gap_values]
    bars = ax2.bar(gap_names, gap_values, color=colors)
    ax2.bar_label(bars, fmt="%.3f")
    ax2.axhline(0, color="black", linewidth=0.8)
    ax2.set_title(f"gaps: {r.diagnosis}")
    for ax in (ax1, ax2):
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, 0), hi * 1.12 if hi > 0 else hi)
    fig.suptitle(f"{r.task}: bias/variance against human level ({r.human_error:.3f})")
    return save_figure(fig, path, dpi=110)


def write(r: BiasVarianceReport, out_dir: Path) -> list[Path]:
    """report.md, report.html and report.png in ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = plot(r, out_dir / "report.png")
    md = out_dir / "report.md"
    md.write_text(to_markdown(r, chart.name), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(r, chart.name), encoding="utf-8")
    return [md, page, chart]


def trial_table(results: list[TrialResult]) -> str:
    """One Markdown table of the report figures of every trial of a sweep."""
    head = ("| trial | state | objective | train | train-dev | dev | avoidable bias | variance "
            "| data mismatch | diagnosis | params |")
    lines = [head, "|" + "---|" * 11]
    fmt = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"  # noqa: E731
    for result in results:
        r = result.report
        state = result.state + ("" if result.feasible else " (infeasible)")
        if result.retried_as is not None:
            state += f" (retried as {result.retried_as})"
        cells = [str(result.number), state, fmt(result.value)]
        if r:
            cells += [fmt(r["train_error"]), fmt(r["train_dev_error"]), fmt(r["dev_error"]),
                      fmt(r["avoidable_bias"]), fmt(r["variance"]), fmt(r["data_mismatch"]), r["diagnosis"]]
        else:
            cells += [""] * 7
        cells.append(", ".join(f"{k}={_short(v)}" for k, v in result.params.items()))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _short(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
