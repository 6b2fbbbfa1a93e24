"""orch-bow: the PyTorch NLP tutorial's bag-of-words classifier (logistic regression on word counts)
as an orch task: did a shopper recommend the dress, from the words of her review."""

from __future__ import annotations

from orchestrator import Artifact, HumanBaseline, Plot, Stage, Task, hookimpl, split_metrics

ORCH_API = ">=1,<2"

HUMAN = HumanBaseline(
    error=0.067,
    source=("the reviewers' own consistency: on the shipped 3,000 reviews their star rating (>= 4 stars taken "
            "as recommended) disagrees with their recommendation on 6.70% of them (export_reviews.py); a reader "
            "who recovered the stars from the text exactly would still err that often"),
)


def build_task() -> Task:
    from orch_bow import stages
    from orch_bow.params import BowParams

    return Task(
        name="bow",
        description="Bag-of-words logistic regression on review texts (the PyTorch NLP tutorial)",
        params_model=BowParams,
        metric="error",
        metrics=(*split_metrics("loss"), "n_*", "vocab_size"),
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, ("data", "val_pct", "train_dev_pct", "min_count", "max_vocab"),
                  description="read the labelled texts, split, count words"),
            Stage("train", stages.train, ("epochs", "bs", "lr", "wd"), inputs=("prepare",), tracked=True,
                  description="SGD on the negative log-likelihood",
                  plot=Plot(("train_loss", "val_loss"), title="bow: loss per epoch", y_label="NLL")),
            Stage("report", stages.report, inputs=("prepare", "train"), description="the telling words, bias/variance"),
        ),
        artifacts=(Artifact("model.*", "model", "train", "the classifier: state_dict and config"),
                   Artifact("words.md", "report", "report", "the words that weigh most for each label")),
        space={"lr": {"low": 0.01, "high": 1.0, "scale": "log"}, "wd": {"low": 1e-6, "high": 1e-2, "scale": "log"}},
    )


@hookimpl
def orch_register_tasks() -> list[Task]:
    return [build_task()]
