"""The charrnn write-ups: the progression table against the references and the lesson, and samples."""

from __future__ import annotations

import pandas as pd

from orch_charrnn import reference

# The lesson's validation NLL on Nietzsche, in nats per character, for the report's side-by-side.
LESSON_NATS = {"charloop": 1.75, "rnn": 1.50, "stateful": 1.48, "lstm": 1.26}


def comparison_md(table: pd.DataFrame, refs: dict[str, float], metrics: dict[str, float]) -> str:
    lines = ["# Character models: the progression", "",
             f"Validation = the last {metrics['n_val']:,.0f} characters; {metrics['n_train']:,.0f} training characters.",
             "", "| model | params | val nats/char | val bits/char | perplexity | accuracy | train chars/s "
             "| lesson (Nietzsche), nats |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        lesson = LESSON_NATS.get(r.arch)
        lines.append(f"| {r.arch} | {r.params:,} | {r.val_loss:.3f} | {r.val_bpc:.3f} | {r.val_ppl:.2f} | "
                     f"{r.val_acc:.1%} | {r.chars_per_s:,.0f} | {'' if lesson is None else f'{lesson:.2f}'} |")
    lines += ["", "Reference points on the same validation text:", "",
              "| reference | bits/char | nats/char |", "|---|---:|---:|"]
    lines += [f"| {name} | {bpc:.3f} | {reference.nats(bpc):.3f} |" for name, bpc in refs.items()]
    lines += ["", "Unigram and bigram: character frequencies of the training text with add-one smoothing. "
              "xz and bz2: the compressed size of the validation text alone. Human: Shannon's 1951 upper "
              "estimate for English (see the bias/variance report).", "", "![comparison](comparison.png)"]
    return "\n".join(lines) + "\n"


def samples_md(samples: dict[float, str], arch: str) -> str:
    parts = [f"# Samples from the {arch} model", ""]
    for t, text in samples.items():
        parts += [f"## temperature {t}", "", "```text", text, "```", ""]
    return "\n".join(parts)
