"""Serving a trained ULMFiT classifier: ``SentimentClassifier`` for Python, ``orch predict ulmfit`` for the shell."""

from __future__ import annotations

import json
from pathlib import Path

import click

from orchestrator import UserError

TAB = "\t"


class SentimentClassifier:
    """Labels texts with the classify stage's model, tokenized as its training texts were."""

    def __init__(self, folder: Path):
        """``folder`` holds classifier.pt, classifier.json and classifier.vocab.txt."""
        from orch_ulmfit import text
        from orch_ulmfit.model import build_classifier
        from orchestrator import load_model

        if not (folder / "classifier.vocab.txt").exists():
            raise UserError(f"{folder}: no classifier.vocab.txt beside the classifier (made before `orch predict "
                            "ulmfit` existed?); run the classify stage again")
        self.config = json.loads((folder / "classifier.json").read_text())
        self.model = load_model(folder, "classifier", build_classifier)
        self.vocab = text.Vocab.load(folder / "classifier.vocab.txt")

    def predict(self, docs: list[list[str]]) -> list[dict]:
        """Each document a list of its fields (a review: title, text); fewer fields than the model
        was trained on fill the last ones. Returns label and class probabilities per document."""
        from orch_ulmfit import text
        from orch_ulmfit.train import class_probabilities

        fields, classes = self.config["fields"], self.config["classes"]
        too_many = [d for d in docs if len(d) > fields]
        if too_many:
            raise UserError(f"predict ulmfit: {len(too_many[0])} tab-separated fields in {TAB.join(too_many[0])[:40]!r}; "
                            f"the model was trained on {fields}")
        padded = [[""] * (fields - len(d)) + list(d) for d in docs]
        ids = [self.vocab.numericalize(t) for t in text.tokenize_docs(padded)]
        probs = class_probabilities(self.model, ids, 64, self.config["max_len"], "cpu")
        return [{"text": TAB.join(d), "label": classes[int(p.argmax())],
                 **{f"p_{c}": round(float(v), 4) for c, v in zip(classes, p)}} for d, p in zip(docs, probs)]


@click.command("predict")
@click.argument("texts", nargs=-1)
@click.option("--run", "run_id", help="MLflow run id of a ulmfit run (default: the DVC pipeline's model).")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="read one document per line (fields separated by tabs) instead of TEXTS; - for stdin.")
@click.option("--json", "as_json", is_flag=True, help="print JSON records instead of a table.")
@click.pass_obj
def predict_command(env, texts, run_id, path, as_json):
    """Label TEXTS (each one document; a tab separates its fields, e.g. title and review) with a
    trained ULMFiT classifier."""
    if path is not None and texts:
        raise UserError("predict ulmfit: give TEXTS or --file, not both")
    lines = _read_lines(path) if path is not None else list(texts)
    if not lines:
        raise UserError("predict ulmfit: no text given (pass TEXTS or --file)")
    folder = env.run_artifacts(run_id)("model") if run_id else env.pipeline_output("classify", "classifier.pt")
    rows = SentimentClassifier(folder).predict([line.split(TAB) for line in lines])
    if as_json:
        click.echo(json.dumps(rows))
        return
    import pandas as pd

    table = pd.DataFrame(rows).assign(text=lambda t: t["text"].str.replace(TAB, " | "))
    click.echo(table.to_string(index=False))


def _read_lines(path: Path) -> list[str]:
    try:
        content = click.get_text_stream("stdin").read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--file {path}: cannot read it ({exc})") from None
    return [line for line in content.splitlines() if line.strip()]
