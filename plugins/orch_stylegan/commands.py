"""``orch generate stylegan``: images for given seeds, with truncation and style mixing, as one PNG."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator import UserError

GROUPS = ("coarse", "middle", "fine")


def parse_seeds(text: str) -> list[int]:
    """'1,2,3' or '1-8' or a mix: '1-4,10' (non-negative integers)."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            lo, sep, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
    except ValueError:
        raise UserError(f"--seeds: expected non-negative integers like 1,2,3 or 1-8, got {text!r}") from None
    if not seeds:
        raise UserError(f"--seeds: no seeds in {text!r}")
    if len(seeds) > 1024:
        raise UserError(f"--seeds: {len(seeds)} seeds; at most 1024 per image")
    return seeds


def render(g, seeds: list[int], psi: float, mix_seed: int | None, mix_layers: str, cutoff: int | None = None):
    """uint8 (N, C, R, R): one image per seed; with ``mix_seed``, that seed's styles in ``mix_layers``."""
    import torch

    from orch_stylegan.grids import latents
    from orch_stylegan.model import layer_groups
    from orch_stylegan.train import to_uint8

    with torch.no_grad():
        ws = g.broadcast(g.map(latents(g, seeds)))
        if mix_seed is not None:
            group = layer_groups(g.resolution)[mix_layers]
            ws = ws.clone()
            ws[:, group.start:group.stop] = g.map(latents(g, [mix_seed]))[0]
        noise = None
        if g.use_noise:  # each image's noise from its own seed: the same seed gives the same image
            per_seed = [g.make_noise(1, torch.Generator().manual_seed(s)) for s in seeds]
            noise = [torch.cat(layer) for layer in zip(*per_seed)]
        return to_uint8(g.synthesis(g.truncate(ws, psi, cutoff), noise))


@click.command("generate")
@click.option("--run", "run_id", help="MLflow run id of a stylegan run (default: the DVC pipeline's generator).")
@click.option("--seeds", default="0-7", show_default=True, help="latent seeds: 1,2,3 or 1-8.")
@click.option("--psi", type=float, default=1.0, show_default=True, help="truncation psi in [-1, 1] (1: none).")
@click.option("--cutoff", type=click.IntRange(1), default=None, help="truncate only the layers below this one.")
@click.option("--mix-seed", type=int, default=None, help="copy this seed's styles into every image...")
@click.option("--mix-layers", type=click.Choice(GROUPS), default="coarse", show_default=True,
              help="...in these layers.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("generated.png"),
              show_default=True, help="PNG file to write (a grid, one image per seed).")
@click.option("--scale", type=click.IntRange(1, 16), default=4, show_default=True, help="pixel upscaling of the PNG.")
@click.pass_obj
def generate_command(env, run_id, seeds, psi, cutoff, mix_seed, mix_layers, out_path, scale):
    """Generate images with a trained StyleGAN generator."""
    import numpy as np

    from orch_stylegan.grids import save_png, tile
    from orch_stylegan.model import load_generator

    if not -1 <= psi <= 1:
        raise UserError(f"--psi: must be in [-1, 1], got {psi}")
    seed_list = parse_seeds(seeds)
    if out_path.suffix.lower() != ".png":
        raise UserError(f"--out {out_path}: expected a .png file")
    if not out_path.parent.exists():
        raise UserError(f"--out {out_path}: folder {out_path.parent} does not exist")
    folder = env.run_artifacts(run_id)("model") if run_id else env.pipeline_output("train", "generator.pt")
    g, _ = load_generator(folder)
    if cutoff is not None and cutoff > g.n_layers:
        raise UserError(f"--cutoff: this generator has {g.n_layers} style layers, got {cutoff}")
    images = render(g, seed_list, psi, mix_seed, mix_layers, cutoff)
    cols = int(np.ceil(np.sqrt(len(images))))
    save_png(tile(images, int(np.ceil(len(images) / cols)), cols), out_path, scale)
    click.echo(f"wrote {len(images)} image(s) to {out_path}")
