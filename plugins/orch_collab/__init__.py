"""Collaborative filtering on MovieLens: the fast.ai lesson's EmbeddingDotBias, as a task plugin.

Registered through the ``orch`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

from orchestrator import Artifact, HumanBaseline, Plot, Stage, Task, hookimpl, split_metrics

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
    from orch_collab.commands import predict_command
    from orch_collab.params import CollabParams

    return Task(
        name="collab",
        description="Collaborative filtering on MovieLens: embedding dot product with biases",
        params_model=CollabParams,
        metric="rmse",
        metrics=(*split_metrics("loss"), "train_seconds", "predict_ms_per_1k", "n_*"),
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, ("data", "valid_pct", "train_dev_pct"),
                  description="load MovieLens, index, 80/20 split + train-dev"),
            Stage("train", stages.train, ("n_factors", "epochs", "bs", "lr", "wd", "y_range"), inputs=("prepare",),
                  tracked=True, description="train EmbeddingDotBias",
                  plot=Plot(("train_loss", "val_loss"), title="collab: loss per epoch", y_label="MSE")),
            Stage("report", stages.report, inputs=("prepare", "train"),
                  description="film biases, PCA, bias/variance report"),
        ),
        artifacts=(
            Artifact("model.*", "model", "train", "EmbeddingDotBias: state_dict and config (orchestrator.load_model)"),
            Artifact("*.csv", "data", "prepare", "items.csv and users.csv: the ids serving needs"),
            Artifact("ratings.parquet", "data", "prepare", "every rating with its split"),
            Artifact("*.csv", "table", "report", "film_bias.csv (15 films at each end), pca_ends.csv"),
            Artifact("*.png", "plot", "report", "pca_scatter.png, loss_curves.png"),
            Artifact("interpretation.md", "report", "report", "what the model learned"),
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
