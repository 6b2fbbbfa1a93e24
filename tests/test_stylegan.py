"""The stylegan plugin: loaders, generator parts (AdaIN, noise, mixing, truncation), EMA, FID/KID
arithmetic, resumable training, generation by seed, bad input."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from orch_stylegan import data
from orch_stylegan.commands import parse_seeds, render
from orch_stylegan.metrics import fid, kid
from orch_stylegan.model import AdaIN, Discriminator, Generator, layer_groups
from orch_stylegan.params import StyleGANParams
from orch_stylegan.train import Trainer, ema_update
from orchestrator.checkpoint import Resumable, read_checkpoint, rng_states, set_rng_states, write_atomic
from orchestrator.errors import UserError


def small_g(resolution: int = 16, **kw) -> Generator:
    torch.manual_seed(0)
    return Generator(resolution, 1, z_dim=8, w_dim=8, mapping_depth=2, fmap_base=64, fmap_max=8, **kw).eval()


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


# --- loaders -----------------------------------------------------------------------------------

def test_idx_files_read_with_labels_and_pad_28_to_32(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 1, 0]))
    got = data.load(str(tmp_path / "train-images-idx3-ubyte.gz"), 1, 32, "pad")
    assert got.pixels.shape == (5, 1, 32, 32) and got.labels.tolist() == [0, 1, 2, 1, 0]
    assert (got.pixels[:, 0, 2:30, 2:30] == images).all()  # padded by zeros, not resampled
    assert got.pixels[:, :, :2].sum() == 0


def test_embedded_default_is_fashion_mnist_test_set():
    got = data.load("embedded", 1, 32, "pad")
    assert got.pixels.shape == (10_000, 1, 32, 32) and sorted(set(got.labels.tolist())) == list(range(10))


def test_bad_idx_files_are_named(tmp_path):
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04rest"))
    with pytest.raises(UserError, match="bad.gz: not an IDX file"):
        data.read_idx(tmp_path / "bad.gz")
    header = bytes([0, 0, 8, 3]) + struct.pack(">3i", 10, 28, 28)
    (tmp_path / "short.gz").write_bytes(gzip.compress(header + b"\x00" * 100))
    with pytest.raises(UserError, match="short.gz: IDX header promises"):
        data.read_idx(tmp_path / "short.gz")


def test_folder_of_mixed_sizes_and_modes_is_fitted_and_labelled_by_subfolder(tmp_path):
    from PIL import Image

    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs" / "deep").mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "cats" / "a.png")
    Image.new("L", (7, 7), 128).save(tmp_path / "cats" / "b.jpg")
    Image.new("RGBA", (64, 64), (0, 0, 255, 255)).save(tmp_path / "dogs" / "deep" / "c.png")
    got = data.load(str(tmp_path), 3, 16, "pad")
    assert got.pixels.shape == (3, 3, 16, 16) and got.classes == ["cats", "dogs"]
    assert got.labels.tolist() == [0, 0, 1]
    assert got.pixels[0, 0, 8, 8] > 200 and got.pixels[0, 0, 0, 8] == 0  # red, padded top and bottom
    grey = data.load(str(tmp_path), 1, 16, "crop")
    assert grey.pixels.shape == (3, 1, 16, 16)


def test_empty_folder_and_corrupt_image_are_named(tmp_path):
    with pytest.raises(UserError, match="no images"):
        data.load(str(tmp_path), 1, 16, "pad")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png: unreadable or corrupt image"):
        data.load(str(tmp_path), 1, 16, "pad")
    with pytest.raises(UserError, match="not found"):
        data.load(str(tmp_path / "missing"), 1, 16, "pad")


def test_resolution_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        StyleGANParams(resolution=48)


def test_split_is_disjoint_and_seeded():
    parts = data.split(100, 10, 15, seed=1)
    assert len(parts["train"]) == 75 and len(parts["train_dev"]) == 10 and len(parts["val"]) == 15
    assert len(set(np.concatenate(list(parts.values())).tolist())) == 100
    assert (data.split(100, 10, 15, seed=1)["val"] == parts["val"]).all()
    with pytest.raises(UserError, match="leave none"):
        data.split(20, 10, 10, seed=1)


# --- generator parts ---------------------------------------------------------------------------

@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_shapes_through_every_resolution(resolution):
    g = small_g(resolution)
    d = Discriminator(resolution, 1, fmap_base=64, fmap_max=8)
    assert g.n_layers == 2 * int(np.log2(resolution)) - 2
    img = g(torch.randn(4, 8))
    assert img.shape == (4, 1, resolution, resolution)
    assert d(img).shape == (4,)
    groups = layer_groups(resolution)
    covered = [i for name in ("coarse", "middle", "fine") for i in groups[name]]
    assert covered == list(range(g.n_layers)) and all(len(r) for r in groups.values())


def test_adain_normalizes_each_channel_then_applies_the_style():
    torch.manual_seed(0)
    adain = AdaIN(3, 4)
    x = torch.randn(2, 3, 8, 8) * 5 + 3
    out = adain(x, torch.zeros(2, 4))  # w = 0: scale = its bias 1, shift = 0
    flat = out.flatten(2)
    assert torch.allclose(flat.mean(-1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(flat.var(-1, unbiased=False), torch.ones(2, 3), atol=1e-3)
    w = torch.randn(2, 4)
    styled = adain(x, w).flatten(2)
    assert torch.allclose(styled.mean(-1), adain.shift(w), atol=1e-4)
    assert torch.allclose(styled.std(-1, unbiased=False), adain.scale(w).abs(), atol=1e-3)


def test_noise_changes_detail_not_content():
    g = small_g(16)
    with torch.no_grad():
        for layer in g.layers:  # trained generators learn these scales; start them non-zero
            layer.noise.weight.fill_(0.2)
        z = torch.randn(2, 8)
        ws = g.broadcast(g.map(z))
        a = g.synthesis(ws[:1], g.make_noise(1, torch.Generator().manual_seed(1)))
        b = g.synthesis(ws[:1], g.make_noise(1, torch.Generator().manual_seed(2)))
        other = g.synthesis(ws[1:], g.make_noise(1, torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, b)
    assert (a - b).abs().mean() < (a - other).abs().mean()
    no_noise = small_g(16, noise=False)
    with torch.no_grad():
        z = torch.randn(1, 8)
        assert torch.equal(no_noise(z), no_noise(z))


def test_mixing_switches_latents_at_the_crossover_layer():
    g = small_g(16)
    z1, z2 = torch.randn(2, 8), torch.randn(2, 8)
    noise = g.make_noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        w1, w2 = g.map(z1), g.map(z2)
        ws = g.broadcast(w1).clone()
        ws[:, 3:] = w2[:, None]
        assert torch.allclose(g(z1, z2, crossover=3, noise=noise), g.synthesis(ws, noise), atol=1e-6)
        assert torch.allclose(g(z1, z2, crossover=0, noise=noise), g(z2, noise=noise), atol=1e-6)
        assert torch.allclose(g(z1, z2, crossover=g.n_layers, noise=noise), g(z1, noise=noise), atol=1e-6)


def test_truncation_at_psi_zero_gives_the_average_ws_image():
    g = small_g(16)
    g.update_w_avg(g.map(torch.randn(64, 8)).detach())
    noise = g.make_noise(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        at_zero = g(torch.randn(3, 8), psi=0.0, noise=noise)
        average = g.synthesis(g.broadcast(g.w_avg.expand(3, -1)), noise)
        assert torch.allclose(at_zero, average, atol=1e-6)
        z = torch.randn(3, 8)
        assert torch.allclose(g(z, psi=1.0, noise=noise), g(z, noise=noise))
        cut = g.truncate(g.broadcast(g.map(z)), 0.0, cutoff=2)
        assert torch.allclose(cut[:, :2], g.w_avg.expand(3, 2, -1)) and torch.allclose(cut[:, 2:], g.map(z)[:, None].expand(3, g.n_layers - 2, -1))


def test_w_avg_tracks_the_mean_w():
    g = small_g(16)
    g.w_avg_beta = 0.5
    g.update_w_avg(torch.full((4, 8), 2.0))
    assert torch.allclose(g.w_avg, torch.full((8,), 1.0))


def test_ema_update_moves_toward_the_weights_by_one_minus_beta():
    g, ema = small_g(16), small_g(16)
    with torch.no_grad():
        for p in g.parameters():
            p.fill_(1.0)
        for p in ema.parameters():
            p.fill_(0.0)
    g.w_avg.fill_(3.0)
    ema_update(ema, g, beta=0.9)
    assert all(torch.allclose(p, torch.full_like(p, 0.1)) for p in ema.parameters())
    assert torch.allclose(ema.w_avg, torch.full_like(ema.w_avg, 3.0))  # buffers copied


# --- metrics -----------------------------------------------------------------------------------

def test_fid_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20_000, 2))
    b = rng.normal(0, 2, (20_000, 2)) + np.array([3.0, 0.0])
    # |mu|^2 + tr(I + 4I - 2 * 2I) = 9 + 2
    assert fid(a, b) == pytest.approx(11.0, rel=0.03)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_otherwise():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (1000, 4)), rng.normal(0, 1, (1000, 4))
    same = kid(a, b, subsets=20, subset_size=500)
    shifted = kid(a, b + 1.0, subsets=20, subset_size=500)
    assert abs(same) < 0.02 and shifted > 0.5


# --- training and generation -------------------------------------------------------------------

def tiny_params(**kw) -> StyleGANParams:
    base = dict(resolution=16, z_dim=8, w_dim=8, mapping_depth=2, fmap_base=64, fmap_max=8, bs=8, epochs=2,
                r1_every=2, ema_half_life=50)
    return StyleGANParams(**{**base, **kw})


def test_resumed_training_continues_exactly_where_it_stopped(tmp_path):
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (32, 1, 16, 16), dtype=np.uint8))

    def run(epochs, ckpt=None, resume=None):
        torch.manual_seed(0)
        import random
        random.seed(0)
        trainer = Trainer(tiny_params(), 1, "cpu")
        losses = {}

        def resumable(**objects):  # what ctx.resumable does: RNG states first, then the objects' states
            saved = read_checkpoint(resume) if resume is not None else None
            if saved is not None:
                set_rng_states(saved["rng"])
            save = None if ckpt is None else (lambda state: write_atomic({"state": state, "rng": rng_states()}, ckpt))
            return Resumable(objects, saved and saved["state"], save)

        trainer.fit(images, epochs, lambda e, m: losses.__setitem__(e, m["d_loss"]), resumable=resumable)
        return trainer, losses

    straight, straight_losses = run(2)
    run(1, tmp_path / "ckpt.pt")
    resumed, resumed_losses = run(2, resume=tmp_path / "ckpt.pt")
    assert resumed.epoch == 2 and resumed.images_seen == straight.images_seen and resumed.resumed_from == 1
    for a, b in zip(straight.g_ema.parameters(), resumed.g_ema.parameters()):
        assert torch.allclose(a, b)
    assert resumed_losses == pytest.approx({1: straight_losses[1]})


def test_generation_is_deterministic_per_seed():
    g = small_g(16)
    a = render(g, [1, 2, 3], 0.7, None, "coarse")
    b = render(g, [3], 0.7, None, "coarse")
    assert a.dtype == np.uint8 and a.shape == (3, 1, 16, 16)
    assert (a[2] == b[0]).all()  # seed 3's image does not depend on its neighbours
    mixed = render(g, [1, 2, 3], 0.7, 9, "coarse")
    assert not (mixed == a).all()


def test_seed_lists_parse_and_bad_ones_are_named():
    assert parse_seeds("1,2,5-7") == [1, 2, 5, 6, 7]
    with pytest.raises(UserError, match="--seeds"):
        parse_seeds("1,x")
