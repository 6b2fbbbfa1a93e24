"""Serving a trained collab model: ``Recommender`` for Python, ``orch predict collab`` for the shell."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from orchestrator import UserError


class Recommender:
    """Scores (userId, movieId) pairs and ranks films for a user, in the dataset's own ids."""

    def __init__(self, model_dir: Path, tables: Path):
        """``model_dir`` holds model.pt/model.json; ``tables`` the prepare stage's items.csv,
        users.csv and ratings.parquet (to leave out films a user has already rated)."""
        from orch_collab.model import build
        from orchestrator import load_model

        self.model = load_model(model_dir, "model", build)
        self.items = pd.read_csv(tables / "items.csv", keep_default_na=False)
        users = pd.read_csv(tables / "users.csv")
        self.user_index = dict(zip(users["userId"], users["user"]))
        self.item_index = dict(zip(self.items["movieId"], self.items["item"]))
        ratings = tables / "ratings.parquet"
        self.ratings = pd.read_parquet(ratings, columns=["user", "item"]) if ratings.exists() else None

    def _user(self, user_id: int) -> int:
        if user_id not in self.user_index:
            raise UserError(f"--user {user_id}: unknown userId (the model knows {len(self.user_index)} users)")
        return self.user_index[user_id]

    def predict(self, user_id: int, movie_ids: list[int]) -> pd.DataFrame:
        import torch

        from orch_collab.train import predict

        unknown = [m for m in movie_ids if m not in self.item_index]
        if unknown:
            raise UserError(f"--movie {unknown[0]}: unknown movieId")
        items = torch.tensor([self.item_index[m] for m in movie_ids])
        users = torch.full_like(items, self._user(user_id))
        scores = predict(self.model, users, items).numpy()
        titles = self.items.set_index("item").loc[items.numpy(), "title"].tolist()
        return pd.DataFrame({"movieId": movie_ids, "title": titles, "predicted": scores.round(3)})

    def recommend(self, user_id: int, top: int = 10, min_ratings: int = 20, include_rated: bool = False) -> pd.DataFrame:
        """The ``top`` films with the highest predicted rating among films with enough ratings,
        leaving out those the user has rated (when the ratings are at hand)."""
        pool = self.items[self.items["n_ratings"] >= min_ratings]
        if self.ratings is not None and not include_rated:
            seen = self.ratings.loc[self.ratings["user"] == self._user(user_id), "item"]
            pool = pool[~pool["item"].isin(seen)]
        candidates = pool["movieId"].tolist()
        scored = self.predict(user_id, candidates)
        return scored.sort_values("predicted", ascending=False, kind="stable").head(top).reset_index(drop=True)


@click.command("predict")
@click.option("--run", "run_id", help="MLflow run id of a collab run (default: the DVC pipeline's model).")
@click.option("--user", "user_id", type=int, required=True, help="userId to predict for.")
@click.option("--movie", "movie_ids", type=int, multiple=True, help="movieId to score (repeatable).")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="without --movie: recommend this many films.")
@click.option("--include-rated", is_flag=True, help="also recommend films the user has already rated.")
@click.option("--json", "as_json", is_flag=True, help="print JSON records instead of a table.")
@click.pass_obj
def predict_command(env, run_id, user_id, movie_ids, top, include_rated, as_json):
    """Predict ratings of a trained collab model, or recommend films for a user."""
    if run_id:
        download = env.run_artifacts(run_id)
        rec = Recommender(download("model"), download("data"))
    else:
        rec = Recommender(env.pipeline_output("train", "model.pt"), env.pipeline_output("prepare"))
    table = rec.predict(user_id, list(movie_ids)) if movie_ids else rec.recommend(user_id, top, include_rated=include_rated)
    click.echo(json.dumps(table.to_dict(orient="records")) if as_json else table.to_string(index=False))
