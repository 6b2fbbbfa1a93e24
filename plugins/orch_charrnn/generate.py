"""Text generation: temperature and top-k sampling, deterministic for a seed."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch
from torch.nn import functional as F

from orch_charrnn.data import PAD, Vocab
from orchestrator.errors import UserError


@torch.no_grad()
def sample(model, vocab: Vocab, prompt: str, n_chars: int, temperature: float = 0.8, top_k: int | None = None,
           seed: int = 0, device="cpu") -> str:
    """Continue ``prompt`` by ``n_chars`` characters. An empty prompt starts from a line break."""
    if temperature <= 0:
        raise UserError(f"--temperature: must be > 0, got {temperature}")
    prompt = prompt or "\n"
    unknown = sorted({c for c in prompt if c not in vocab.index or c == PAD})
    if unknown:
        raise UserError(f"--prompt: characters not in the model's vocabulary: {''.join(unknown)!r}")
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.from_numpy(vocab.encode(prompt)).unsqueeze(0).to(device)
    logits, state = model(x, None)
    out = []
    for _ in range(n_chars):
        last = logits[0, -1].float().cpu() / temperature
        last[0] = -float("inf")  # never emit padding
        if top_k:
            kth = torch.topk(last, min(top_k, last.numel())).values[-1]
            last[last < kth] = -float("inf")
        nxt = torch.multinomial(F.softmax(last, dim=-1), 1, generator=gen).item()
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]], device=device), state)
    return prompt + vocab.decode(out)


def load(folder: Path):
    """Model and vocabulary from a train output folder (weights only: no pickled code runs)."""
    from orch_charrnn.model import build
    from orch_charrnn.params import CharRNNParams

    meta = json.loads((folder / "model.json").read_text())
    vocab = Vocab.load(folder / "vocab.json")
    model = build(meta["arch"], len(vocab), CharRNNParams.model_validate(meta["params"]))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), vocab


@click.command("generate")
@click.option("--run", "run_id", help="MLflow run id of a charrnn run (default: the DVC pipeline's model).")
@click.option("--prompt", default="", help="text to continue (default: start of a line).")
@click.option("--chars", "n_chars", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=0.8, show_default=True)
@click.option("--top-k", type=click.IntRange(1), default=None, help="sample only among the k likeliest characters.")
@click.option("--seed", type=int, default=0, show_default=True, help="same seed, same text.")
@click.pass_obj
def generate_command(env, run_id, prompt, n_chars, temperature, top_k, seed):
    """Generate text with a trained character model."""
    folder = env.run_artifacts(run_id)("model") if run_id else env.pipeline_output("train", "model.pt")
    model, vocab = load(folder)
    click.echo(sample(model, vocab, prompt, n_chars, temperature, top_k, seed))
