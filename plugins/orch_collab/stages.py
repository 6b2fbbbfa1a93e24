"""The collab pipeline: prepare -> train -> report. Orchestration only: the host seeds, keeps
the history, logs the declared artifacts; the work lives in data, train, report and plots."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from orch_collab import data, report as interpret
from orchestrator import SPLITS, StageContext, UserError

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
            **{f"n_{s}": int(sizes.get(s, 0)) for s in SPLITS}}


def train(ctx: StageContext) -> dict[str, float]:
    from orch_collab.model import build
    from orch_collab.train import fit, mse, predict_ms_per_1k, split_tensors

    p, prep = ctx.params, ctx.input_dir("prepare")
    splits = split_tensors(pd.read_parquet(prep / "ratings.parquet"), ctx.device)
    config = {"n_users": len(pd.read_csv(prep / "users.csv")), "n_items": len(pd.read_csv(prep / "items.csv")),
              "n_factors": p.n_factors, "y_range": list(p.y_range)}
    model = build(config).to(ctx.device)
    start = time.perf_counter()
    fit(model, splits["train"], splits["val"], epochs=p.epochs, bs=p.bs, lr=p.lr, wd=p.wd, seed=p.seed,
        on_epoch=ctx.log_epoch, progress=ctx.progress, resumable=ctx.resumable)
    seconds = time.perf_counter() - start
    ctx.save_model("model", model, config)
    errors = {s: mse(model, splits[s]) for s in SPLITS}
    return {"train_loss": ctx.history[p.epochs - 1]["train_loss"], "val_loss": errors["val"],
            **{f"{s}_rmse": errors[s] ** 0.5 for s in SPLITS},
            "predict_ms_per_1k": predict_ms_per_1k(model, splits["val"]), "train_seconds": seconds}


def report(ctx: StageContext) -> dict[str, float]:
    """The lesson's interpretation (biases, PCA) and the bias/variance report."""
    from orch_collab import plots
    from orch_collab.model import build
    from orchestrator import loss_curves

    out = ctx.out_dir
    model = ctx.load_model("train", "model", build)
    items = pd.read_csv(ctx.input_dir("prepare") / "items.csv", keep_default_na=False)
    titles = items["title"].astype(str).tolist()
    top = interpret.most_rated(items["n_ratings"].to_numpy())
    biases = interpret.bias_table(model.item_bias.weight.detach().numpy()[:, 0], titles, top)
    biases.to_csv(out / "film_bias.csv", index=False)
    scores, ratio = interpret.pca(model.item_factors.weight.detach().numpy()[top])
    ends = interpret.component_ends(scores, titles, top)
    ends.to_csv(out / "pca_ends.csv", index=False)
    plots.scatter(scores, titles, top, out / "pca_scatter.png")
    loss_curves(ctx.input_history("train"), out / "loss_curves.png",
                "collab: loss per epoch (MSE)")
    (out / "interpretation.md").write_text(interpret.interpretation_md(biases, ends, ratio), encoding="utf-8")
    ctx.bias_variance_report()
    return {}
