"""The rossmann pipeline: prepare -> train (network) -> embeddings -> gbm -> report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orch_rossmann import prepare as kaggle
from orch_rossmann.tabular import Encoder, embedding_size, mape, rmspe, time_split
from orchestrator.context import StageContext
from orchestrator.errors import UserError
from orchestrator.task import HumanBaseline

SPLITS = ("train", "train_dev", "val")
KAGGLE_WINNER_RMSPE = 0.10  # the Kaggle winners' private-leaderboard RMSPE, an upper bound on human level


def _load_frames(ctx: StageContext) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """(train-period rows with LogSales, test rows or None, facts about the data)."""
    p = ctx.params
    if p.csv.path:
        return _load_csv(p), None, {"source": p.csv.path}
    if p.data == "embedded":
        from orch_rossmann import generate

        folder = ctx.out_dir / "data"
        meta = generate.write(folder, generate.Spec(p.n_stores, p.data_seed, p.noise_sigma))
    else:
        folder, meta = Path(p.data), {}
    train, test = kaggle.features(kaggle.load(folder))
    solution = folder / "test_solution.csv"
    if solution.exists():  # the generator keeps the test answers Kaggle kept secret
        answers = pd.read_csv(solution)
        test = test.drop(columns=["Sales"]).merge(answers, on="Id", how="left")
        test = test[(test["Open"] > 0) & (test["Sales"] > 0)].assign(LogSales=lambda f: np.log(f["Sales"]))
    else:
        test = None
    return train, test, {"source": str(folder), **meta}


def _load_csv(p) -> pd.DataFrame:
    path = Path(p.csv.path)
    frame = kaggle.read(path.parent, path.name, [p.csv.date, p.csv.target, *p.categorical, *p.continuous])
    target = pd.to_numeric(frame[p.csv.target], errors="coerce")
    if target.isna().any():
        raise UserError(f"{path}: column {p.csv.target}: expected numbers")
    frame = frame[target > 0].copy()
    frame["LogSales"] = np.log(target[target > 0])
    return frame.rename(columns={p.csv.date: "Date"}).rename(columns={p.csv.target: "Sales"})


def prepare(ctx: StageContext) -> dict[str, float]:
    p = ctx.params
    if p.csv.path:
        p = p.model_copy(update={"categorical": p.csv.categorical or p.categorical,
                                 "continuous": p.csv.continuous or p.continuous})
    full, test, facts = _load_frames(ctx)
    missing = [c for c in (*p.categorical, *p.continuous) if c not in full.columns]
    if missing:
        raise UserError(f"{facts['source']}: column(s) {', '.join(missing)} not found (params: "
                        f"{ctx.task.name}.categorical / continuous)")
    head, val = time_split(full, "Date", p.valid_weeks)
    rng = np.random.default_rng(p.seed)
    if p.train_rows and p.train_rows < len(head):
        head = head.iloc[np.sort(rng.choice(len(head), p.train_rows, replace=False))]
    held = rng.random(len(head)) < p.train_dev_pct
    parts = {"train": head[~held], "train_dev": head[held], "val": val}
    if test is not None:
        parts["test"] = test
    encoder = Encoder(list(p.categorical), list(p.continuous)).fit(parts["train"])
    encoder.save(ctx.out_dir / "encoder.json")
    for name, frame in parts.items():
        np.savez_compressed(ctx.out_dir / f"{name}.npz", cats=encoder.codes(frame), conts=encoder.scaled(frame),
                            y=frame["LogSales"].to_numpy(np.float32))
    (ctx.out_dir / "facts.json").write_text(json.dumps(facts, indent=1, default=str))
    unseen = {c: int((encoder.codes(val)[:, j] == 0).sum()) for j, c in enumerate(encoder.categorical)}
    return {**{f"n_{k}": len(v) for k, v in parts.items()}, "n_unseen_val_codes": sum(unseen.values()),
            "val_start": float(val["Date"].min().strftime("%Y%m%d"))}


def _arrays(folder: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(folder / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def _human(ctx: StageContext) -> HumanBaseline:
    facts = json.loads((ctx.input_dir("prepare") / "facts.json").read_text())
    if "bayes_rmspe" in facts:
        return HumanBaseline(facts["bayes_rmspe"], (
            f"the generator's own noise: log sales carry N(0, {facts['noise_sigma']}^2) noise, so no model "
            f"can beat RMSPE sqrt(1 - exp(-sigma^2)) = {facts['bayes_rmspe']:.4f} (exact Bayes error)"))
    return ctx.task.human


def train(ctx: StageContext) -> dict[str, float]:
    import torch
    from torch.nn import functional as F

    from orch_rossmann.model import EntityEmbeddingNet
    from orchestrator.device import seed_everything

    p = ctx.params
    prep = ctx.input_dir("prepare")
    encoder = Encoder.load(prep / "encoder.json")
    data = {s: _arrays(prep, s) for s in (*SPLITS, "test") if (prep / f"{s}.npz").exists()}
    seed_everything(p.seed)
    cards = [encoder.n_codes(c) for c in encoder.categorical]
    y_max = float(data["train"]["y"].max())
    model = EntityEmbeddingNet(cards, [embedding_size(n) for n in cards], len(encoder.continuous), p.layers,
                               p.dropouts, p.emb_drop, (0.0, y_max * 1.2)).to(ctx.device)
    tensors = {s: [torch.from_numpy(d[k]).to(ctx.device) for k in ("cats", "conts", "y")] for s, d in data.items()}
    cats, conts, y = tensors["train"]
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.wd)
    steps = (len(y) + p.bs - 1) // p.bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=p.epochs * steps)
    gen = torch.Generator().manual_seed(p.seed)

    def predict(split: str) -> np.ndarray:
        model.eval()
        c, x, _ = tensors[split]
        with torch.no_grad():
            return torch.cat([model(c[i:i + 8192], x[i:i + 8192]) for i in range(0, len(c), 8192)]).cpu().numpy()

    history, start = [], time.perf_counter()
    for epoch in range(p.epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen).to(ctx.device)
        total = 0.0
        for i in range(0, len(order), p.bs):
            idx = order[i:i + p.bs]
            loss = F.mse_loss(model(cats[idx], conts[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        val_pred = predict("val")
        val_y = data["val"]["y"]
        metrics = {"train_loss": total / len(y), "val_loss": float(np.mean((val_pred - val_y) ** 2)),
                   "val_rmspe": rmspe(np.exp(val_y), np.exp(val_pred)), "val_mape": mape(np.exp(val_y), np.exp(val_pred))}
        history.append({"epoch": epoch, **metrics})
        ctx.log_epoch(epoch, metrics)
    seconds = time.perf_counter() - start
    pd.DataFrame(history).to_csv(ctx.out_dir / "history.csv", index=False)
    torch.save(model.state_dict(), ctx.out_dir / "model.pt")
    (ctx.out_dir / "model.json").write_text(json.dumps({"cardinalities": cards, "sizes": [embedding_size(n) for n in cards],
                                                        "n_cont": len(encoder.continuous), "y_range": [0.0, y_max * 1.2],
                                                        "layers": p.layers, "dropouts": p.dropouts, "emb_drop": p.emb_drop}))
    for name, kind in (("model.pt", "model"), ("model.json", "model"), ("history.csv", "table")):
        ctx.log_artifact(ctx.out_dir / name, kind)
    out = {"train_seconds": seconds, "train_loss": history[-1]["train_loss"], "val_loss": history[-1]["val_loss"]}
    for split in data:
        pred, truth = np.exp(predict(split)), np.exp(data[split]["y"])
        out[f"{split}_rmspe"], out[f"{split}_mape"] = rmspe(truth, pred), mape(truth, pred)
    return out


def load_model(folder: Path):
    import torch

    from orch_rossmann.model import EntityEmbeddingNet

    meta = json.loads((folder / "model.json").read_text())
    model = EntityEmbeddingNet(meta["cardinalities"], meta["sizes"], meta["n_cont"], meta["layers"], meta["dropouts"],
                               meta["emb_drop"], tuple(meta["y_range"]))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def embeddings(ctx: StageContext) -> dict[str, float]:
    """One CSV per categorical: a row per category value (``<unknown>`` first) with its vector."""
    encoder = Encoder.load(ctx.input_dir("prepare") / "encoder.json")
    model = load_model(ctx.input_dir("train"))
    for i, column in enumerate(encoder.categorical):
        matrix = model.embedding_matrix(i).numpy()
        frame = pd.DataFrame(matrix, columns=[f"e{k}" for k in range(matrix.shape[1])])
        frame.insert(0, column, ["<unknown>", *encoder.categories[column]])
        frame.to_csv(ctx.out_dir / f"{column}.csv", index=False)
    ctx.log_artifact(ctx.out_dir, "data")
    return {"n_embeddings": len(encoder.categorical)}


def _features(codes: np.ndarray, conts: np.ndarray, tables: list[np.ndarray] | None) -> np.ndarray:
    """Plain codes, or each code replaced by its embedding vector; continuous columns appended."""
    if tables is None:
        return np.hstack([codes.astype(np.float32), conts])
    return np.hstack([t[codes[:, j]] for j, t in enumerate(tables)] + [conts]).astype(np.float32)


def gbm(ctx: StageContext) -> dict[str, float]:
    """GBM, random forest and KNN on plain codes and on entity embeddings (the paper's tables III/IV)."""
    import lightgbm as lgb
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neighbors import KNeighborsRegressor

    p = ctx.params
    prep, emb_dir = ctx.input_dir("prepare"), ctx.input_dir("embeddings")
    encoder = Encoder.load(prep / "encoder.json")
    data = {s: _arrays(prep, s) for s in ("train", "val", "test") if (prep / f"{s}.npz").exists()}
    tables = [pd.read_csv(emb_dir / f"{c}.csv").iloc[:, 1:].to_numpy(np.float32) for c in encoder.categorical]
    rng = np.random.default_rng(p.seed)
    rows, importance = [], None
    for variant, emb in (("plain", None), ("embeddings", tables)):
        X = {s: _features(d["cats"], d["conts"], emb) for s, d in data.items()}
        y = data["train"]["y"]
        for name in p.models:
            start = time.perf_counter()
            if name == "gbm":
                model = lgb.LGBMRegressor(**p.gbm.model_dump(), subsample=0.8, subsample_freq=1,
                                          random_state=p.seed, n_jobs=2, verbose=-1)
                model.fit(X["train"], y)
                if variant == "plain":
                    importance = pd.DataFrame({"feature": [*encoder.categorical, *encoder.continuous],
                                               "gain": model.booster_.feature_importance("gain")})
            elif name == "rf":
                pick = rng.choice(len(y), size=min(len(y), p.others.rf_max_rows), replace=False)
                model = RandomForestRegressor(n_estimators=p.others.rf_trees, min_samples_leaf=2, max_features="sqrt",
                                              n_jobs=2, random_state=p.seed).fit(X["train"][pick], y[pick])
            else:
                pick = rng.choice(len(y), size=min(len(y), p.others.knn_max_rows), replace=False)
                model = KNeighborsRegressor(n_neighbors=p.others.knn_k, n_jobs=2).fit(X["train"][pick], y[pick])
            row = {"model": name, "features": variant, "fit_seconds": time.perf_counter() - start}
            for split in ("val", "test"):
                if split in X:
                    pred, truth = np.exp(model.predict(X[split])), np.exp(data[split]["y"])
                    row[f"{split}_mape"], row[f"{split}_rmspe"] = mape(truth, pred), rmspe(truth, pred)
            rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(ctx.out_dir / "comparison.csv", index=False)
    importance.sort_values("gain", ascending=False).to_csv(ctx.out_dir / "gbm_importance.csv", index=False)
    for name in ("comparison.csv", "gbm_importance.csv"):
        ctx.log_artifact(ctx.out_dir / name, "table")
    return {f"{r['model']}_{r['features']}.val_mape": r["val_mape"] for r in rows} | \
           {f"{r['model']}_{r['features']}.val_rmspe": r["val_rmspe"] for r in rows}


def report(ctx: StageContext) -> dict[str, float]:
    from orch_rossmann import plots
    from orchestrator.plots import loss_curves

    out = ctx.out_dir
    metrics = ctx.upstream_metrics()
    encoder = Encoder.load(ctx.input_dir("prepare") / "encoder.json")
    emb_dir = ctx.input_dir("embeddings")
    table = pd.read_csv(ctx.input_dir("gbm") / "comparison.csv")
    importance = pd.read_csv(ctx.input_dir("gbm") / "gbm_importance.csv")
    files = []
    if "State" in encoder.categorical:
        files.append(plots.state_map(pd.read_csv(emb_dir / "State.csv"), out / "state_embedding.png"))
    for column, fname in (("DayOfWeek", "dayofweek_embedding.png"), ("Month", "month_embedding.png")):
        if column in encoder.categorical:
            files.append(plots.ordinal_embedding(pd.read_csv(emb_dir / f"{column}.csv"), column, out / fname))
    files.append(plots.importance(importance, out / "gbm_importance.png"))
    files.append(loss_curves(pd.read_csv(ctx.input_dir("train") / "history.csv"), out / "loss_curves.png",
                             "rossmann network: loss per epoch (MSE of log sales)"))
    (out / "comparison.md").write_text(_comparison_md(table, metrics), encoding="utf-8")
    for path in files:
        ctx.log_artifact(path, "plot")
    ctx.log_artifact(out / "comparison.md", "report")
    ctx.bias_variance_report(metrics, human=_human(ctx))
    return {}


def _comparison_md(table: pd.DataFrame, metrics: dict) -> str:
    has_test = "test_mape" in table
    lines = ["# Entity embeddings: plain codes against learned embeddings", "",
             "Validation: the last weeks of the training period (a time split, as long as the test period)."
             + (" Test: the generator's held-back test answers." if has_test else ""), "",
             "| model | features | val MAPE | val RMSPE |" + (" test MAPE | test RMSPE |" if has_test else ""),
             "|---|---|---:|---:|" + ("---:|---:|" if has_test else "")]
    net = [("neural network", "entity embeddings", metrics["val_mape"], metrics["val_rmspe"],
            metrics.get("test_mape"), metrics.get("test_rmspe"))]
    rows = [(r.model, r.features, r.val_mape, r.val_rmspe, getattr(r, "test_mape", None), getattr(r, "test_rmspe", None))
            for r in table.itertuples()] + net
    for model, features, vm, vr, tm, tr in rows:
        cells = f"| {model} | {features} | {vm:.4f} | {vr:.4f} |"
        if has_test:
            cells += f" {tm:.4f} | {tr:.4f} |"
        lines.append(cells)
    lines += ["", "Gain from embeddings (val MAPE, plain -> embeddings):", ""]
    for model in table["model"].unique():
        plain = table[(table.model == model) & (table.features == "plain")]["val_mape"].iloc[0]
        emb = table[(table.model == model) & (table.features == "embeddings")]["val_mape"].iloc[0]
        lines.append(f"- {model}: {plain:.4f} -> {emb:.4f} ({(emb - plain) / plain:+.1%})")
    lines += ["", "For comparison, Guo & Berkhahn (2016) report GBM MAPE 0.152 on plain features and 0.115 on "
              "entity embeddings (24% lower) on Kaggle's Rossmann data.", "",
              "![state embedding](state_embedding.png)", "", "![GBM feature importance](gbm_importance.png)"]
    return "\n".join(lines) + "\n"
