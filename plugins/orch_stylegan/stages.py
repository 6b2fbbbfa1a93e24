"""The stylegan pipeline: prepare -> features (the FID/KID extractor and the real-vs-real floor) ->
train (the GAN, resumable) -> evaluate (FID/KID per split, the untrained generator, grids) -> report.

Splits, in the bias/variance report's terms (metric: FID, lower is better):
  train      FID of generated images against real images the GAN trained on
  train_dev  ... against held-out real images from the same pool (a gap = memorizing the training set)
  val        ... against a second held-out set (the dev set; for a folder from elsewhere, put it there)
  human      the real-vs-real floor: FID between two real sets of the same sizes
"""

from __future__ import annotations

import json

import numpy as np

from orch_stylegan import data
from orchestrator import SPLITS, StageContext, UserError, not_resumable

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
    from orch_stylegan.metrics import accuracy, fid, kid, train_feature_net
    from orch_stylegan.train import to_float

    p = ctx.params
    xs, ys = load_images(ctx)

    def on_epoch(epoch, m):
        ctx.echo(f"epoch {epoch + 1}  loss={m['loss']:.4f}  acc={m['acc']:.4f}")

    net, task = train_feature_net(to_float(xs["train"]), ys["train"], p.feature_epochs, p.seed, ctx.device, on_epoch)
    ctx.save_model("feature_net", net, {"task": task, "n_classes": net.head[-1].out_features,
                                        "channels": int(xs["train"].shape[1])})
    feats = {s: net.features(to_float(x)) for s, x in xs.items()}
    probe = feats["train"][np.random.default_rng(p.seed).choice(len(feats["train"]), p.eval_images, replace=False)]
    np.savez(ctx.out_dir / "real_features.npz", train=probe, train_dev=feats["train_dev"], val=feats["val"])
    return {"feature_task_" + task: 1.0, "feature_val_acc": accuracy(net, to_float(xs["val"]), ys["val"], task, p.seed),
            "floor_fid": fid(probe, feats["val"]), "floor_kid": kid(probe, feats["val"], seed=p.seed),
            "floor_fid_dev": fid(feats["train_dev"], feats["val"])}


def real_features(ctx: StageContext) -> dict[str, np.ndarray]:
    """The features stage's real-image features per split."""
    with np.load(ctx.input_dir("features") / "real_features.npz") as z:
        return {k: z[k] for k in z.files}


def train(ctx: StageContext) -> dict[str, float]:
    """The GAN, resumable: a checkpoint after every epoch; the same command continues a killed run,
    and more ``epochs`` continue a finished one."""
    from orch_stylegan import grids
    from orch_stylegan.metrics import fid, generated_features, load_feature_net
    from orch_stylegan.train import Trainer

    p = ctx.params
    xs, _ = load_images(ctx)
    net = load_feature_net(ctx.input_dir("features")).to(ctx.device)
    real_dev = real_features(ctx)["train_dev"]
    channels = int(xs["train"].shape[1])
    trainer = Trainer(p, channels, ctx.device)
    (ctx.out_dir / "grids").mkdir(exist_ok=True)

    def on_epoch(epoch: int, metrics: dict) -> None:
        trainer.g_ema.eval()
        fid_dev = fid(generated_features(trainer.g_ema, net, p.eval_images, p.seed + 1), real_dev)
        ctx.log_epoch(epoch, {**metrics, "train_dev_fid": fid_dev, "kimg": trainer.images_seen / 1000})
        grids.sample_grid(trainer.g_ema, ctx.out_dir / "grids" / f"epoch_{epoch + 1:03d}.png")

    trainer.fit(xs["train"], p.epochs, on_epoch, progress=ctx.progress,
                resumable=ctx.resumable if p.checkpoints else not_resumable)
    ctx.save_model("generator", trainer.g_ema, {"params": p.model_dump(mode="json"), "channels": channels})
    return trainer.summary()


def evaluate(ctx: StageContext) -> dict[str, float]:
    """FID and KID of the EMA generator per split, with truncation, and of an untrained generator."""
    import torch

    from orch_stylegan.metrics import fid, generated_features, kid, load_feature_net
    from orch_stylegan.model import build, load_generator

    p = ctx.params
    net = load_feature_net(ctx.input_dir("features"))
    real = real_features(ctx)
    g, built = load_generator(ctx.input_dir("train"))
    fake = generated_features(g, net, p.eval_images, p.seed + 2)
    out = {}
    for split in SPLITS:
        out[f"{split}_fid"] = fid(fake, real[split])
        out[f"{split}_kid"] = kid(fake, real[split], seed=p.seed)
    out["val_fid_psi"] = fid(generated_features(g, net, p.eval_images, p.seed + 2, psi=p.psi), real["val"])
    torch.manual_seed(p.seed)
    untrained, _ = build(built, g.to_rgb.weight.shape[0])
    raw = generated_features(untrained.eval(), net, p.eval_images, p.seed + 2)
    out["untrained_val_fid"], out["untrained_val_kid"] = fid(raw, real["val"]), kid(raw, real["val"], seed=p.seed)
    return out


def report(ctx: StageContext) -> dict[str, float]:
    from orch_stylegan import grids, plots, report
    from orch_stylegan.model import load_generator

    p, out = ctx.params, ctx.out_dir
    metrics = ctx.upstream_metrics()
    g, _ = load_generator(ctx.input_dir("train"))
    grids.sample_grid(g, out / "samples.png", psi=1.0)
    grids.sample_grid(g, out / f"samples_psi{p.psi:g}.png", psi=p.psi)
    grids.mixing_grid(g, out / "style_mixing.png")
    grids.truncation_grid(g, out / "truncation.png", cutoff=p.cutoff)
    grids.interpolation_strip(g, out / "interpolation.png")
    plots.training_curves(ctx.input_history("train"), metrics, out / "training_curves.png")
    if g.use_noise:
        grids.noise_grid(g, out / "noise.png")
    (out / "evaluation.md").write_text(report.evaluation_md(metrics, p), encoding="utf-8")
    ctx.bias_variance_report(metrics, human=report.floor_baseline(metrics, p.eval_images))
    return {}
