"""The collab pipeline: prepare -> train -> report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.context import StageContext
from orchestrator.errors import UserError
from orch_collab import data, interpret

MIN_RATINGS = 20


def prepare(ctx: StageContext) -> dict[str, float]:
    """Read MovieLens with the real loader (exporting the embedded copy first), index, split."""
    p = ctx.params
    folder = data.export_embedded(ctx.out_dir / "ml-latest-small") if p.data == data.EMBEDDED else Path(p.data)
    ratings = data.load(folder)
    if len(ratings.frame) < MIN_RATINGS:
        raise UserError(f"{folder}: {len(ratings.frame)} ratings; need at least {MIN_RATINGS}")
    frame = ratings.frame.assign(split=data.split(len(ratings.frame), p.valid_pct, p.train_dev_pct, p.seed))
    frame.to_parquet(ctx.out_dir / "ratings.parquet", index=False)
    counts = np.bincount(frame["item"], minlength=ratings.n_items)
    pd.DataFrame({"item": range(ratings.n_items), "movieId": ratings.item_ids, "title": ratings.titles,
                  "n_ratings": counts}).to_csv(ctx.out_dir / "items.csv", index=False)
    pd.DataFrame({"user": range(ratings.n_users), "userId": ratings.user_ids}).to_csv(
        ctx.out_dir / "users.csv", index=False)
    sizes = frame["split"].value_counts()
    return {"n_ratings": len(frame), "n_users": ratings.n_users, "n_items": ratings.n_items,
            **{f"n_{s}": int(sizes.get(s, 0)) for s in data.SPLIT_NAMES}}


def _tensors(frame: pd.DataFrame, device):
    import torch

    from orch_collab.train import SplitTensors

    out = {}
    for name in data.SPLIT_NAMES:
        part = frame[frame["split"] == name]
        out[name] = SplitTensors(torch.tensor(part["user"].to_numpy()), torch.tensor(part["item"].to_numpy()),
                                 torch.tensor(part["rating"].to_numpy())).to(device)
    return out


def train(ctx: StageContext) -> dict[str, float]:
    import torch

    from orch_collab.model import EmbeddingDotBias
    from orch_collab.train import fit, mse, predict_ms_per_1k
    from orchestrator.device import seed_everything

    p = ctx.params
    prep = ctx.input_dir("prepare")
    frame = pd.read_parquet(prep / "ratings.parquet")
    n_users, n_items = len(pd.read_csv(prep / "users.csv")), len(pd.read_csv(prep / "items.csv"))
    splits = _tensors(frame, ctx.device)
    seed_everything(p.seed)
    model = EmbeddingDotBias(n_users, n_items, p.n_factors, p.y_range).to(ctx.device)
    history: list[dict] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        history.append({"epoch": epoch, **metrics})
        ctx.log_epoch(epoch, metrics)

    start = time.perf_counter()
    fit(model, splits["train"], splits["val"], epochs=p.epochs, bs=p.bs, lr=p.lr, wd=p.wd, seed=p.seed,
        on_epoch=on_epoch, progress=not ctx.quiet)
    seconds = time.perf_counter() - start
    pd.DataFrame(history).to_csv(ctx.out_dir / "history.csv", index=False)

    torch.save(model.state_dict(), ctx.out_dir / "model.pt")
    (ctx.out_dir / "model.json").write_text(json.dumps(
        {"n_users": n_users, "n_items": n_items, "n_factors": p.n_factors, "y_range": list(p.y_range)}))
    for name in ("model.pt", "model.json"):
        ctx.log_artifact(ctx.out_dir / name, "model")
    ctx.log_artifact(ctx.out_dir / "history.csv", "table")
    for name in ("items.csv", "users.csv", "ratings.parquet"):  # what serving the model needs
        ctx.log_artifact(prep / name, "data")

    errors = {f"{s}_mse": mse(model, splits[s]) for s in data.SPLIT_NAMES}
    return {
        "train_loss": history[-1]["train_loss"],
        "val_loss": errors["val_mse"],
        **{f"{s}_rmse": errors[f"{s}_mse"] ** 0.5 for s in data.SPLIT_NAMES},
        "predict_ms_per_1k": predict_ms_per_1k(model, splits["val"]),
        "train_seconds": seconds,
    }


def load_model(folder: Path):
    """The trained model from a train output folder (weights only: no pickled code runs)."""
    import torch

    from orch_collab.model import EmbeddingDotBias

    meta = json.loads((folder / "model.json").read_text())
    model = EmbeddingDotBias(meta["n_users"], meta["n_items"], meta["n_factors"], tuple(meta["y_range"]))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def report(ctx: StageContext) -> dict[str, float]:
    """The lesson's interpretation (biases, PCA) and the bias/variance report."""
    from orchestrator.plots import loss_curves

    out = ctx.out_dir
    model = load_model(ctx.input_dir("train"))
    items = pd.read_csv(ctx.input_dir("prepare") / "items.csv", keep_default_na=False)
    titles = items["title"].astype(str).tolist()
    top = interpret.most_rated(items["n_ratings"].to_numpy())

    bias = model.item_bias.weight.detach().numpy()[:, 0]
    biases = interpret.bias_table(bias, titles, top)
    biases.to_csv(out / "film_bias.csv", index=False)
    scores, ratio = interpret.pca(model.item_factors.weight.detach().numpy()[top])
    ends = interpret.component_ends(scores, titles, top)
    ends.to_csv(out / "pca_ends.csv", index=False)
    interpret.scatter(scores, titles, top, out / "pca_scatter.png")
    history = pd.read_csv(ctx.input_dir("train") / "history.csv")
    loss_curves(history, out / "loss_curves.png", "collab: loss per epoch (MSE)")
    (out / "interpretation.md").write_text(_interpretation_md(biases, ends, ratio), encoding="utf-8")

    for name, kind in [("film_bias.csv", "table"), ("pca_ends.csv", "table"), ("pca_scatter.png", "plot"),
                       ("loss_curves.png", "plot"), ("interpretation.md", "report")]:
        ctx.log_artifact(out / name, kind)
    ctx.bias_variance_report()
    return {}


def _interpretation_md(biases: pd.DataFrame, ends: pd.DataFrame, ratio: np.ndarray) -> str:
    lines = ["# What the collab model learned", "",
             f"Among the {interpret.TOP_FILMS} most-rated films.", ""]
    for end in ("lowest", "highest"):
        rows = biases[biases["end"] == end]
        lines += [f"## 15 films with the {end} bias", "", "| film | bias |", "|---|---:|",
                  *(f"| {r.title} | {r.bias:.3f} |" for r in rows.itertuples()), ""]
    for c in (1, 2):
        share = ratio[c - 1] if len(ratio) >= c else float("nan")
        lines += [f"## PCA component {c} ({share:.1%} of the variance)", ""]
        for end in ("low", "high"):
            films = ends[(ends["component"] == c) & (ends["end"] == end)]["title"]
            lines.append(f"- {end} end: " + "; ".join(films))
        lines.append("")
    lines.append("![films on components 1 and 2](pca_scatter.png)")
    return "\n".join(lines) + "\n"
