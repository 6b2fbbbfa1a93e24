"""The stylegan write-up: the FID/KID table and the real-vs-real floor that stands as human level."""

from __future__ import annotations

from orchestrator import HumanBaseline


def floor_baseline(metrics: dict, eval_images: int) -> HumanBaseline:
    return HumanBaseline(metrics["floor_fid"], (
        f"the real-vs-real floor: FID between {eval_images} real training images and the {eval_images} "
        "held-out validation images, with the same feature extractor; no generator can be told from real data "
        "more reliably than real data from itself"))


def evaluation_md(m: dict, p) -> str:
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
