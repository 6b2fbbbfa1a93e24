"""``orch generate charrnn``: text from a trained character model."""

from __future__ import annotations

import click


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
    from orch_charrnn.model import load, sample  # torch: only when the command runs

    model, vocab = load(folder)
    click.echo(sample(model, vocab, prompt, n_chars, temperature, top_k, seed))
