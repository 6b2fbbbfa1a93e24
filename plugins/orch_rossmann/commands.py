"""Serving a trained rossmann network: ``Forecaster`` for Python, ``orch predict rossmann`` for the shell."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from orch_rossmann import data
from orch_rossmann.tabular import Encoder


class Forecaster:
    """Daily sales of new rows from a run's entity-embedding network. ``model_dir`` holds
    model.pt/model.json; ``data_dir`` the prepare stage's encoder.json and, for Kaggle's files,
    the tables it kept (``serving/`` in the pipeline's output, flat in a run's ``data`` artifacts)."""

    def __init__(self, model_dir: Path, data_dir: Path):
        from orch_rossmann.model import build
        from orchestrator import load_model

        self.model = load_model(model_dir, "model", build)
        self.encoder = Encoder.load(data_dir / "encoder.json")
        self.serving = data_dir / "serving" if (data_dir / "serving").is_dir() else data_dir
        self.kaggle = (self.serving / "store.csv").exists()  # trained on Kaggle's files (or generated ones)

    def features(self, path: Path) -> pd.DataFrame:
        if self.kaggle:
            return data.rows_to_forecast(path, self.serving)
        return data.read(path.parent, path.name, [*self.encoder.categorical, *self.encoder.continuous])

    def predict(self, path: Path) -> pd.DataFrame:
        """One row per row of ``path``, in its order. Kaggle's rows: Id, Store, Date and the
        forecast Sales (a closed store sells nothing, Kaggle's rule). A generic CSV's rows: its
        own columns and ``forecast``."""
        from orch_rossmann.train import predict, to_tensors

        frame = self.features(path)
        arrays = {"cats": self.encoder.codes(frame), "conts": self.encoder.scaled(frame),
                  "y": np.zeros(len(frame), np.float32)}
        sales = np.exp(predict(self.model, to_tensors(arrays, "cpu")))
        if not self.kaggle:
            return frame.assign(forecast=sales.round(3))
        out = frame[["Id", "Store"]].astype("int64")  # the join with the history made them floats
        out["Date"] = frame["Date"].dt.strftime("%Y-%m-%d")
        out["Sales"] = np.where(frame["Open"].to_numpy() > 0, sales, 0.0).round(1)
        return out


@click.command("predict")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="rows to forecast: Kaggle's test.csv columns (Store, DayOfWeek, Date, Open, Promo, StateHoliday, "
                   "SchoolHoliday; Id optional), or a generic CSV run's feature columns.")
@click.option("--run", "run_id", help="MLflow run id of a rossmann run (default: the DVC pipeline's model).")
@click.option("--json", "as_json", is_flag=True, help="print JSON records instead of CSV.")
@click.pass_obj
def predict_command(env, path, run_id, as_json):
    """Forecast daily sales of new rows with a trained entity-embedding network."""
    if run_id:
        download = env.run_artifacts(run_id)
        forecaster = Forecaster(download("model"), download("data"))
    else:
        forecaster = Forecaster(env.pipeline_output("train", "model.pt"), env.pipeline_output("prepare", "encoder.json"))
    table = forecaster.predict(path)
    click.echo(json.dumps(table.to_dict(orient="records")) if as_json else table.to_csv(index=False), nl=as_json)
