"""Rossmann sales with entity embeddings of categorical variables, fed to gradient boosting, random
forest and KNN: the fast.ai lesson and Guo & Berkhahn's paper as a task plugin."""

from __future__ import annotations

from orchestrator import hookimpl
from orchestrator.task import Artifact, HumanBaseline, Stage, Task

HUMAN = HumanBaseline(
    error=0.10,
    source=("no human forecast error is published for Rossmann; on Kaggle's real data the winners' RMSPE "
            "of about 0.10 bounds Bayes error from above. On the embedded, generated data the report uses "
            "the generator's exact noise floor instead."),
)


def build_task() -> Task:
    from orch_rossmann import stages
    from orch_rossmann.params import RossmannParams

    k = lambda *names: tuple(f"rossmann.{n}" for n in names)  # noqa: E731
    return Task(
        name="rossmann",
        description="Rossmann sales: entity embeddings of categorical variables, fed to GBM, random forest and KNN",
        params_model=RossmannParams,
        metric="rmspe",
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, k("data", "n_stores", "noise_sigma", "data_seed", "csv", "valid_weeks",
                                               "train_rows", "train_dev_pct", "seed", "categorical", "continuous"),
                  description="generate or load Kaggle's files, join, features, time split, encoders"),
            Stage("train", stages.train, k("seed", "layers", "dropouts", "emb_drop", "epochs", "bs", "lr", "wd"),
                  tracked=True, description="the entity-embedding network"),
            Stage("embeddings", stages.embeddings, (), description="one CSV of vectors per categorical"),
            Stage("gbm", stages.gbm, k("seed", "gbm", "others", "models"),
                  description="GBM, random forest, KNN on plain codes and on embeddings"),
            Stage("report", stages.report, (), description="state map, embeddings, importance, comparison, bias/variance"),
        ),
        artifacts=(
            Artifact("model.pt", "model", "state_dict of the entity-embedding network"),
            Artifact("embeddings/<column>.csv", "data", "a row per category value with its vector (pandas-readable)"),
            Artifact("comparison.csv", "table", "GBM, RF, KNN on plain codes and embeddings: MAPE, RMSPE"),
            Artifact("state_embedding.png", "plot", "state embeddings (PCA) beside the map of Germany"),
            Artifact("gbm_importance.png", "plot", "GBM feature importance"),
            Artifact("report.md", "report", "bias/variance report"),
        ),
        space={
            "lr": {"low": 3e-4, "high": 1e-2, "scale": "log"},
            "emb_drop": {"low": 0.0, "high": 0.3},
            "gbm.learning_rate": {"low": 0.01, "high": 0.3, "scale": "log"},
            "gbm.reg_lambda": {"low": 1e-3, "high": 10.0, "scale": "log"},
        },
    )


@hookimpl
def orch_register_tasks() -> list[Task]:
    return [build_task()]
