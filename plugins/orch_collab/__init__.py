"""Collaborative filtering on MovieLens: the fast.ai lesson's EmbeddingDotBias, as a task plugin.

Registered through the ``orch`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

from orchestrator import hookimpl
from orchestrator.task import Artifact, HumanBaseline, Stage, Task

HUMAN = HumanBaseline(
    error=0.557,
    source=(
        "Amatriain et al. 2009 (\"Rate it again\"): users re-rating the same films disagree with "
        "themselves by RMSE 0.557-0.816; the lowest, 0.557, stands for Bayes error (Ng's rule: "
        "use the best human performance)."
    ),
)


def build_task() -> Task:
    from orch_collab import stages
    from orch_collab.params import CollabParams
    from orch_collab.predict import predict_command

    split = ("collab.data", "collab.valid_pct", "collab.train_dev_pct", "collab.seed")
    training = ("collab.seed", "collab.n_factors", "collab.epochs", "collab.bs", "collab.lr", "collab.wd",
                "collab.y_range")
    return Task(
        name="collab",
        description="Collaborative filtering on MovieLens: embedding dot product with biases",
        params_model=CollabParams,
        metric="rmse",
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, split, description="load MovieLens, index, 80/20 split + train-dev"),
            Stage("train", stages.train, training, tracked=True, description="train EmbeddingDotBias"),
            Stage("report", stages.report, (), description="film biases, PCA, bias/variance report"),
        ),
        artifacts=(
            Artifact("model.pt", "model", "state_dict of EmbeddingDotBias (load with weights_only=True)"),
            Artifact("history.csv", "table", "per-epoch train/val loss"),
            Artifact("film_bias.csv", "table", "15 films with the lowest and highest bias"),
            Artifact("pca_ends.csv", "table", "films at both ends of the first two PCA components"),
            Artifact("pca_scatter.png", "plot", "50 most-rated films on PCA components 1 and 2"),
            Artifact("loss_curves.png", "plot", "train and validation loss per epoch"),
            Artifact("report.md", "report", "bias/variance report (also .html, .png, .json)"),
        ),
        space={
            "lr": {"low": 1e-4, "high": 3e-2, "scale": "log"},
            "wd": {"low": 1e-3, "high": 1.0, "scale": "log"},
            "n_factors": {"low": 8, "high": 200, "scale": "log", "type": "int"},
        },
        constraints={"predict_ms_per_1k": {"max": 50.0}},
        commands={"predict": predict_command},
    )


@hookimpl
def orch_register_tasks() -> list[Task]:
    return [build_task()]
