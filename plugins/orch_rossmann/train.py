"""Training: the entity-embedding network (AdamW, one-cycle, MSE on log sales), and the GBM,
random forest and KNN fed with plain codes or with the network's embeddings."""

from __future__ import annotations

import time
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from orch_rossmann.tabular import mape, rmspe
from orchestrator import Resumable, minimize, not_resumable, shuffled_epoch

EVAL_BATCH = 8192
Arrays = dict[str, np.ndarray]  # cats, conts, y of one split


def to_tensors(arrays: Arrays, device) -> list[torch.Tensor]:
    return [torch.from_numpy(arrays[k]).to(device) for k in ("cats", "conts", "y")]


@torch.no_grad()
def predict(model: torch.nn.Module, tensors: list[torch.Tensor]) -> np.ndarray:
    model.eval()
    c, x, _ = tensors
    return torch.cat([model(c[i:i + EVAL_BATCH], x[i:i + EVAL_BATCH]) for i in range(0, len(c), EVAL_BATCH)]).cpu().numpy()


def fit(model: torch.nn.Module, train: list[torch.Tensor], val: list[torch.Tensor], *, epochs: int, bs: int,
        lr: float, wd: float, seed: int, on_epoch: Callable[[int, dict[str, float]], None],
        progress: Callable[..., Iterable] = lambda it, desc="": it,
        resumable: Callable[..., Resumable] = not_resumable) -> None:
    """One-cycle AdamW on MSE of log sales; ``on_epoch`` gets train/val loss, val RMSPE and MAPE;
    ``resumable`` (``ctx.resumable``) continues a killed run."""
    cats, conts, y = train
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps = (len(y) + bs - 1) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    gen = torch.Generator().manual_seed(seed)
    val_y = val[2].cpu().numpy()
    state = resumable(model=model, opt=opt, sched=sched, gen=gen)

    def step(idx: torch.Tensor) -> float:
        return minimize(F.mse_loss(model(cats[idx], conts[idx]), y[idx]), opt, sched)

    for epoch in range(state.epoch, epochs):
        model.train()
        train_loss = shuffled_epoch(state, epoch, len(y), bs, gen, step, device=y.device, progress=progress,
                                    desc=f"epoch {epoch + 1}/{epochs}")
        pred = predict(model, val)
        on_epoch(epoch, {"train_loss": train_loss, "val_loss": float(np.mean((pred - val_y) ** 2)),
                         "val_rmspe": rmspe(np.exp(val_y), np.exp(pred)), "val_mape": mape(np.exp(val_y), np.exp(pred))})
        state.save(epoch + 1)


def features(codes: np.ndarray, conts: np.ndarray, tables: list[np.ndarray] | None) -> np.ndarray:
    """Plain codes, or each code replaced by its embedding vector; continuous columns appended."""
    if tables is None:
        return np.hstack([codes.astype(np.float32), conts])
    return np.hstack([t[codes[:, j]] for j, t in enumerate(tables)] + [conts]).astype(np.float32)


def fit_baselines(p, data: dict[str, Arrays], tables: list[np.ndarray], names: list[str]):
    """GBM, random forest and KNN on plain codes and on embeddings (the paper's tables III/IV):
    one row of errors per model and features; the plain GBM's feature importance (by ``names``)."""
    rng = np.random.default_rng(p.seed)
    rows, importance = [], None
    y = data["train"]["y"]
    for variant, emb in (("plain", None), ("embeddings", tables)):
        X = {s: features(d["cats"], d["conts"], emb) for s, d in data.items()}
        for name in p.models:
            start = time.perf_counter()
            model = _baseline(name, p, X["train"], y, rng)
            if name == "gbm" and variant == "plain":
                importance = pd.DataFrame({"feature": names, "gain": model.booster_.feature_importance("gain")})
            row = {"model": name, "features": variant, "fit_seconds": time.perf_counter() - start}
            for split in ("val", "test"):
                if split in X:
                    pred, truth = np.exp(model.predict(X[split])), np.exp(data[split]["y"])
                    row[f"{split}_mape"], row[f"{split}_rmspe"] = mape(truth, pred), rmspe(truth, pred)
            rows.append(row)
    return pd.DataFrame(rows), importance


def _baseline(name: str, p, X: np.ndarray, y: np.ndarray, rng):
    if name == "gbm":
        import lightgbm as lgb

        return lgb.LGBMRegressor(**p.gbm.model_dump(), subsample=0.8, subsample_freq=1, random_state=p.seed,
                                 n_jobs=2, verbose=-1).fit(X, y)
    if name == "rf":
        from sklearn.ensemble import RandomForestRegressor

        pick = rng.choice(len(y), size=min(len(y), p.others.rf_max_rows), replace=False)
        return RandomForestRegressor(n_estimators=p.others.rf_trees, min_samples_leaf=2, max_features="sqrt",
                                     n_jobs=2, random_state=p.seed).fit(X[pick], y[pick])
    from sklearn.neighbors import KNeighborsRegressor

    pick = rng.choice(len(y), size=min(len(y), p.others.knn_max_rows), replace=False)
    return KNeighborsRegressor(n_neighbors=p.others.knn_k, n_jobs=2).fit(X[pick], y[pick])
