"""The collab plugin: both MovieLens formats, bad files, the split, the model and its weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from orch_collab import data
from orch_collab.model import EmbeddingDotBias
from orch_collab.model import build
from orchestrator import load_model
from orchestrator.checkpoint import save_model
from orchestrator.errors import UserError


def test_latest_small_format(movielens):
    ratings = data.load(movielens)
    assert len(ratings.frame) == 40 * 15
    assert ratings.n_users == 40 and ratings.n_items == 30
    assert ratings.frame["user"].max() == 39 and ratings.frame["item"].max() == 29
    assert ratings.titles[0] == "Film 0 (2000)" and ratings.item_ids[0] == 1


def test_100k_format(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t4\t1\n")
    (folder / "u.item").write_bytes("242|Kolya (1996)|24-Jan-1997||x\n302|L.A. Confidential (1997)|01-Jan-1997||y\n"
                                    "303|Caf\xe9 Society (1995)|1995||z\n".encode("latin-1"))
    ratings = data.load(folder)
    assert ratings.n_users == 2 and ratings.n_items == 2
    assert ratings.titles == ["Kolya (1996)", "L.A. Confidential (1997)"]
    assert ratings.frame["rating"].tolist() == [3.0, 3.0, 4.0]


def test_embedded_export_is_read_by_the_real_loader(tmp_path):
    folder = data.export_embedded(tmp_path / "ml-latest-small")
    header = (folder / "ratings.csv").read_text().splitlines()[0]
    assert header == "userId,movieId,rating,timestamp"
    ratings = data.load(folder)
    assert len(ratings.frame) == 100_004 and ratings.n_users == 671 and ratings.n_items == 9066
    assert "Toy Story (1995)" in ratings.titles


@pytest.mark.parametrize("text, message", [
    ("", "ratings.csv: no ratings (empty file)"),
    ("userId,movieId,rating,timestamp\n", "ratings.csv: no ratings (header only)"),
    ("userId,movieId,timestamp\n1,2,3\n", "ratings.csv: missing column(s) rating"),
    ("userId,movieId,rating\n1,2,4\n1,3,good\n", "ratings.csv: column rating: expected numbers, got 'good' at data row 2"),
    ("userId,movieId,rating\n1.5,2,4\n", "ratings.csv: column userId: expected integer ids"),
])
def test_bad_ratings_files(tmp_path, text, message):
    (tmp_path / "ratings.csv").write_text(text)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load(tmp_path)


def test_folder_without_movielens_files(tmp_path):
    with pytest.raises(UserError, match="expected ratings.csv .ml-latest-small. or u.data .ml-100k."):
        data.load(tmp_path)
    with pytest.raises(UserError, match="MovieLens folder not found"):
        data.load(tmp_path / "missing")


def test_split_is_seeded_and_sized():
    a = data.split(1000, 0.2, 0.05, seed=1)
    assert (a == data.split(1000, 0.2, 0.05, seed=1)).all()
    assert not (a == data.split(1000, 0.2, 0.05, seed=2)).all()
    counts = pd.Series(a).value_counts()
    assert counts["val"] == 200 and counts["train_dev"] == 40 and counts["train"] == 760


def test_predictions_stay_inside_y_range():
    model = EmbeddingDotBias(5, 7, 4, (0.0, 5.5))
    with torch.no_grad():
        model.user_factors.weight.mul_(100)
        model.item_factors.weight.mul_(100)
    users, items = torch.randint(0, 5, (200,)), torch.randint(0, 7, (200,))
    out = model(users, items)
    assert out.shape == (200,) and out.min() >= 0.0 and out.max() <= 5.5


def test_weights_round_trip_with_weights_only(tmp_path):
    model = EmbeddingDotBias(5, 7, 4, (0.5, 5.0))
    save_model(tmp_path, "model", model, {"n_users": 5, "n_items": 7, "n_factors": 4, "y_range": [0.5, 5.0]})
    loaded = load_model(tmp_path, "model", build)
    users, items = torch.arange(5), torch.arange(5)
    assert torch.allclose(loaded(users, items), model.eval()(users, items))
    assert not loaded.training


def test_training_learns_the_tiny_data(movielens):
    """A few epochs on the fixture beat predicting the mean rating (the data has structure)."""
    from orch_collab.train import SplitTensors, fit, mse

    ratings = data.load(movielens)
    f = ratings.frame
    t = lambda part: SplitTensors(torch.tensor(part["user"].to_numpy()), torch.tensor(part["item"].to_numpy()),  # noqa: E731
                                  torch.tensor(part["rating"].to_numpy()))
    torch.manual_seed(0)
    model = EmbeddingDotBias(ratings.n_users, ratings.n_items, 8, (0.0, 5.5))
    seen = []
    fit(model, t(f), t(f), epochs=30, bs=32, lr=0.05, wd=0.0, seed=0,
        on_epoch=lambda e, m: seen.append(m["val_loss"]), )
    baseline = float(((f["rating"] - f["rating"].mean()) ** 2).mean())
    assert seen[-1] < 0.5 * baseline
    assert seen[-1] < seen[0]
    assert np.isfinite(mse(model, t(f)))
