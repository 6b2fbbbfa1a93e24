"""The stylegan pipeline: prepare -> features (the FID/KID extractor and the real-vs-real floor) ->
train (the GAN, resumable) -> evaluate (FID/KID per split, the untrained generator, grids) -> report.

Splits, in the bias/variance report's terms (metric: FID, lower is better):
  train      FID of generated images against real images the GAN trained on
  train_dev  ... against held-out real images from the same pool (a gap = memorizing the training set)
  val        ... against a second held-out set (the dev set; for a folder from elsewhere, put it there)
  human      the real-vs-real floor: FID between two real sets of the same sizes
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np
import pandas as pd

from orch_stylegan import data
from orchestrator.context import StageContext
from orchestrator.task import HumanBaseline

SPLITS = ("train", "train_dev", "val")
TRAIN_KEYS = ("seed", "z_dim", "w_dim", "mapping_depth", "fmap_base", "fmap_max", "styles", "noise", "mix_prob",
              "epochs", "bs", "lr_g", "lr_d", "beta1", "beta2", "r1_gamma", "r1_every", "ema_half_life", "mirror")


def prepare(ctx: StageContext) -> dict[str, float]:
    p = ctx.params
    images = data.load(p.data, p.channels, p.resolution, p.fit)
    pixels, labels = images.pixels, images.labels
    if p.max_images:
        pixels = pixels[: p.max_images]
        labels = labels[: p.max_images] if labels is not None else None
    parts = data.split(len(pixels), p.eval_images, p.eval_images, p.seed)
    if len(parts["train"]) < p.bs:
        from orchestrator.errors import UserError

        raise UserError(f"{images.source}: {len(parts['train'])} training images after the held-out sets, "
                        f"fewer than one batch (stylegan.bs = {p.bs})")
    arrays = {f"{k}_x": pixels[idx] for k, idx in parts.items()}
    if labels is not None:
        arrays |= {f"{k}_y": labels[idx] for k, idx in parts.items()}
    np.savez(ctx.out_dir / "images.npz", **arrays)
    (ctx.out_dir / "classes.json").write_text(json.dumps({"classes": images.classes, "source": images.source}))
    return {**{f"n_{k}": len(v) for k, v in parts.items()}, "resolution": p.resolution, "channels": p.channels,
            "n_classes": len(images.classes)}


def load_images(ctx: StageContext):
    """{split: uint8 tensor}, {split: label tensor or None} from the prepare stage."""
    import torch

    with np.load(ctx.input_dir("prepare") / "images.npz") as z:
        xs = {s: torch.from_numpy(z[f"{s}_x"]) for s in SPLITS}
        ys = {s: torch.from_numpy(z[f"{s}_y"]) if f"{s}_y" in z.files else None for s in SPLITS}
    return xs, ys


def features(ctx: StageContext) -> dict[str, float]:
    """Train the feature extractor on the training images; the real-vs-real floor of FID and KID."""
    import torch

    from orch_stylegan.metrics import accuracy, fid, kid, train_feature_net
    from orch_stylegan.train import to_float
    from orchestrator.device import seed_everything

    p = ctx.params
    seed_everything(p.seed)
    xs, ys = load_images(ctx)

    def on_epoch(epoch, m):
        if not ctx.quiet:
            print(f"[stylegan:features] epoch {epoch + 1}  loss={m['loss']:.4f}  acc={m['acc']:.4f}", file=sys.stderr,
                  flush=True)

    net, task = train_feature_net(to_float(xs["train"]), ys["train"], p.feature_epochs, p.seed, ctx.device, on_epoch)
    torch.save(net.state_dict(), ctx.out_dir / "feature_net.pt")
    n_classes = net.head[-1].out_features
    (ctx.out_dir / "feature_net.json").write_text(json.dumps({"task": task, "n_classes": n_classes,
                                                               "channels": int(xs["train"].shape[1])}))
    feats = {s: net.features(to_float(x)) for s, x in xs.items()}
    n = p.eval_images
    probe = feats["train"][np.random.default_rng(p.seed).choice(len(feats["train"]), n, replace=False)]
    np.savez(ctx.out_dir / "real_features.npz", train=probe, train_dev=feats["train_dev"], val=feats["val"])
    return {"feature_task_" + task: 1.0, "feature_val_acc": accuracy(net, to_float(xs["val"]), ys["val"], task, p.seed),
            "floor_fid": fid(probe, feats["val"]), "floor_kid": kid(probe, feats["val"], seed=p.seed),
            "floor_fid_dev": fid(feats["train_dev"], feats["val"])}


def load_feature_net(folder):
    import torch

    from orch_stylegan.metrics import FeatureNet

    meta = json.loads((folder / "feature_net.json").read_text())
    net = FeatureNet(meta["channels"], meta["n_classes"])
    net.load_state_dict(torch.load(folder / "feature_net.pt", map_location="cpu", weights_only=True))
    return net.eval()


def generated_features(g, net, n: int, seed: int, bs: int = 250, psi: float = 1.0) -> np.ndarray:
    """Features of ``n`` images from ``g`` with latents and noise drawn from ``seed``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    device = g.w_avg.device
    out = []
    with torch.no_grad():
        for i in range(0, n, bs):
            m = min(bs, n - i)
            z = torch.randn(m, g.z_dim, generator=gen).to(device)
            noise = g.make_noise(m, gen) if g.use_noise else None
            out.append(net.features(g(z, psi=psi, noise=noise).clamp(-1, 1).cpu()))
    return np.concatenate(out)


def _checkpoint_path(ctx: StageContext):
    """Outside the stage's own folder (which a failure deletes), keyed by everything that shapes training
    except ``epochs``: no schedule depends on it and resuming restores every RNG, so raising ``epochs``
    continues a finished run exactly as one longer run would have gone."""
    p = ctx.params
    keys = [k for k in TRAIN_KEYS if k != "epochs"]
    key_src = json.dumps({k: getattr(p, k) for k in keys} | {"prepare": _prepare_stamp(ctx)}, sort_keys=True)
    key = hashlib.sha1(key_src.encode()).hexdigest()[:12]
    folder = ctx.out_dir.parent / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.pt"


def _prepare_stamp(ctx: StageContext) -> str:
    """The training images' content hash: the same data prepared again keeps the same checkpoint."""
    digest = hashlib.sha1()
    with open(ctx.input_dir("prepare") / "images.npz", "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def train(ctx: StageContext) -> dict[str, float]:
    import torch

    from orch_stylegan import grids
    from orch_stylegan.metrics import fid
    from orch_stylegan.train import Trainer
    from orchestrator.device import seed_everything

    p = ctx.params
    seed_everything(p.seed)
    xs, _ = load_images(ctx)
    feat_dir = ctx.input_dir("features")
    net = load_feature_net(feat_dir).to(ctx.device)
    with np.load(feat_dir / "real_features.npz") as z:
        real_dev = z["train_dev"]
    trainer = Trainer(p, int(xs["train"].shape[1]), ctx.device)
    ckpt = _checkpoint_path(ctx) if p.checkpoints else None
    resumed = 0
    if ckpt is not None and ckpt.exists():
        trainer.load_state_dict(torch.load(ckpt, map_location=ctx.device, weights_only=True))
        resumed = trainer.epoch
        if not ctx.quiet:
            print(f"[stylegan:train] resuming from {ckpt} at epoch {resumed}", file=sys.stderr, flush=True)
    grid_dir = ctx.out_dir / "grids"
    grid_dir.mkdir()
    for row in trainer.history:  # epochs done before an interruption: show them in this run too
        ctx.log_epoch(row["epoch"], {k: v for k, v in row.items() if k not in ("epoch",)})

    def on_epoch(epoch: int, metrics: dict) -> dict:
        trainer.g_ema.eval()
        extra = {"train_dev_fid": fid(generated_features(trainer.g_ema, net, p.eval_images, p.seed + 1), real_dev),
                 "kimg": trainer.images_seen / 1000}
        ctx.log_epoch(epoch, {**metrics, **extra})
        path = grids.sample_grid(trainer.g_ema, grid_dir / f"epoch_{epoch + 1:03d}.png")
        ctx.log_artifact(path, "image")
        return extra

    start = time.perf_counter()
    trainer.fit(xs["train"], p.epochs, on_epoch, ckpt, progress=not ctx.quiet)
    seconds = time.perf_counter() - start
    torch.save(trainer.g_ema.state_dict(), ctx.out_dir / "generator.pt")
    (ctx.out_dir / "generator.json").write_text(json.dumps({
        "params": p.model_dump(mode="json"), "channels": int(xs["train"].shape[1])}))
    history = pd.DataFrame(trainer.history)
    history.to_csv(ctx.out_dir / "history.csv", index=False)
    for name, kind in (("generator.pt", "model"), ("generator.json", "model"), ("history.csv", "table")):
        ctx.log_artifact(ctx.out_dir / name, kind)
    done = history[history["epoch"] >= resumed]
    return {"train_seconds": seconds, "images_per_s": float(done["images_per_s"].mean()) if len(done) else 0.0,
            "kimg": trainer.images_seen / 1000, "resumed_from_epoch": resumed,
            "params_g": sum(t.numel() for t in trainer.g.parameters()),
            "params_d": sum(t.numel() for t in trainer.d.parameters())}


def load_generator(folder):
    """The EMA generator from a train output folder (weights only)."""
    import torch

    from orch_stylegan.params import StyleGANParams
    from orch_stylegan.train import build

    meta = json.loads((folder / "generator.json").read_text())
    p = StyleGANParams.model_validate(meta["params"])
    g, _ = build(p, meta["channels"])
    g.load_state_dict(torch.load(folder / "generator.pt", map_location="cpu", weights_only=True))
    return g.eval(), p


def evaluate(ctx: StageContext) -> dict[str, float]:
    """FID and KID of the EMA generator per split, with truncation, and of an untrained generator."""
    import torch

    from orch_stylegan.metrics import fid, kid
    from orch_stylegan.train import build

    p = ctx.params
    net = load_feature_net(ctx.input_dir("features"))
    with np.load(ctx.input_dir("features") / "real_features.npz") as z:
        real = {s: z[s] for s in SPLITS}
    g, _ = load_generator(ctx.input_dir("train"))
    fake = generated_features(g, net, p.eval_images, p.seed + 2)
    out = {}
    for split in SPLITS:
        out[f"{split}_fid"] = fid(fake, real[split])
        out[f"{split}_kid"] = kid(fake, real[split], seed=p.seed)
    truncated = generated_features(g, net, p.eval_images, p.seed + 2, psi=p.psi)
    out["val_fid_psi"] = fid(truncated, real["val"])
    torch.manual_seed(p.seed)
    untrained, _ = build(p, g.to_rgb.weight.shape[0])
    raw = generated_features(untrained.eval(), net, p.eval_images, p.seed + 2)
    out["untrained_val_fid"], out["untrained_val_kid"] = fid(raw, real["val"]), kid(raw, real["val"], seed=p.seed)
    return out


def report(ctx: StageContext) -> dict[str, float]:
    from orch_stylegan import grids, plots

    p = ctx.params
    out = ctx.out_dir
    metrics = ctx.upstream_metrics()
    g, _ = load_generator(ctx.input_dir("train"))
    history = pd.read_csv(ctx.input_dir("train") / "history.csv")
    files = [
        grids.sample_grid(g, out / "samples.png", psi=1.0),
        grids.sample_grid(g, out / f"samples_psi{p.psi:g}.png", psi=p.psi),
        grids.mixing_grid(g, out / "style_mixing.png"),
        grids.truncation_grid(g, out / "truncation.png", cutoff=p.cutoff),
        grids.interpolation_strip(g, out / "interpolation.png"),
        plots.training_curves(history, metrics, out / "training_curves.png"),
    ]
    if g.use_noise:
        files.append(grids.noise_grid(g, out / "noise.png"))
    for path in files:
        ctx.log_artifact(path, "plot")
    (out / "evaluation.md").write_text(_evaluation_md(metrics, p), encoding="utf-8")
    ctx.log_artifact(out / "evaluation.md", "report")
    human = HumanBaseline(metrics["floor_fid"], (
        f"the real-vs-real floor: FID between {p.eval_images} real training images and the {p.eval_images} "
        "held-out validation images, with the same feature extractor; no generator can be told from real data "
        "more reliably than real data from itself"))
    ctx.bias_variance_report(metrics, human=human)
    return {}


def _evaluation_md(m: dict, p) -> str:
    rows = [("generator (EMA), psi 1", m["train_fid"], m["train_dev_fid"], m["val_fid"], m["val_kid"]),
            ("untrained generator", None, None, m["untrained_val_fid"], m["untrained_val_kid"]),
            ("real vs real (floor)", m["floor_fid"], None, m["floor_fid_dev"], m["floor_kid"])]
    lines = ["# StyleGAN evaluation", "",
             f"{p.eval_images} generated images against {p.eval_images} real images per split, in the feature "
             f"space of a classifier trained here on the real training images (validation accuracy "
             f"{m['feature_val_acc']:.1%}); the README's stylegan section says why not Inception.", "",
             "| images | FID vs train | FID vs train-dev | FID vs val | KID vs val |", "|---|---:|---:|---:|---:|"]
    for name, *vals in rows:
        lines.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.4g}" for v in vals) + " |")
    lines += ["", f"With truncation psi = {p.psi:g}: FID vs val {m['val_fid_psi']:.4g} (less variety, so usually "
              "higher FID even when single samples look cleaner).", "",
              f"Training: {m['kimg']:.1f}k images shown, {m['images_per_s']:.0f} images/s, {m['train_seconds']:.0f} s.",
              "", "![samples](samples.png)", "", "![style mixing](style_mixing.png)", "",
              "![truncation](truncation.png)", "", "![training](training_curves.png)"]
    return "\n".join(lines) + "\n"
