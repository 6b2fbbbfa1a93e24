"""Rossmann sales with entity embeddings of categorical variables, fed to gradient boosting, random
forest and KNN: the fast.ai lesson and Guo & Berkhahn's paper as a task plugin."""

from __future__ import annotations

from orchestrator import Artifact, HumanBaseline, Plot, Stage, Task, hookimpl, split_metrics

HUMAN = HumanBaseline(
    error=0.10,
    source=("no human forecast error is published for Rossmann; on Kaggle's real data the winners' RMSPE "
            "of about 0.10 bounds Bayes error from above. On the embedded, generated data the report uses "
            "the generator's exact noise floor instead."),
)


def build_task() -> Task:
    from orch_rossmann import stages
    from orch_rossmann.commands import predict_command
    from orch_rossmann.params import RossmannParams

    return Task(
        name="rossmann",
        description="Rossmann sales: entity embeddings of categorical variables, fed to GBM, random forest and KNN",
        params_model=RossmannParams,
        metric="rmspe",
        metrics=(*split_metrics("loss", "mape"), "test_rmspe", "test_mape", "*.val_rmspe", "*.val_mape",
                 "train_seconds", "n_*", "val_start"),
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, ("data", "n_stores", "noise_sigma", "data_seed", "csv", "valid_weeks",
                                              "train_rows", "train_dev_pct", "categorical", "continuous"),
                  description="generate or load Kaggle's files, join, features, time split, encoders"),
            Stage("train", stages.train, ("layers", "dropouts", "emb_drop", "epochs", "bs", "lr", "wd"),
                  inputs=("prepare",), tracked=True, description="the entity-embedding network",
                  plot=Plot(("train_loss", "val_loss"), title="rossmann network: loss per epoch",
                            y_label="MSE of log sales")),
            Stage("embeddings", stages.embeddings, inputs=("prepare", "train"),
                  description="one CSV of vectors per categorical"),
            Stage("gbm", stages.gbm, ("gbm", "others", "models"), inputs=("prepare", "embeddings"),
                  description="GBM, random forest, KNN on plain codes and on embeddings"),
            Stage("report", stages.report, inputs=("prepare", "train", "embeddings", "gbm"),
                  description="state map, embeddings, importance, comparison, bias/variance"),
        ),
        artifacts=(
            Artifact("model.*", "model", "train", "the entity-embedding network: state_dict and config"),
            Artifact("encoder.json", "data", "prepare", "codes and scaling fitted on train: serving needs them"),
            Artifact("serving/*", "data", "prepare", "store and side tables, the last 60 days of history (Kaggle's files)"),
            Artifact("*.csv", "data", "embeddings", "<column>.csv: a row per category value with its vector"),
            Artifact("*.csv", "table", "gbm", "comparison.csv (GBM, RF, KNN on codes and embeddings), importance"),
            Artifact("*.png", "plot", "report", "state map, embeddings, GBM importance, loss curves"),
            Artifact("comparison.md", "report", "report", "plain codes against embeddings, per model"),
        ),
        commands={"predict": predict_command},
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
