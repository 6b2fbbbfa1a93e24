"""The ablation's write-up and the human baseline of the embedded reviews."""

from __future__ import annotations

import pandas as pd

from orchestrator import HumanBaseline

# measured with fastai 2.8.12 on the embedded reviews (AWD-LSTM 200/400/2, 80/20 split, no downloads)
FASTAI_ANCHOR_ERROR = {"scratch": 0.0870, "ulmfit": 0.0780, "majority": 0.1875}

VARIANTS = {
    "scratch": "classifier from scratch (no pretraining)",
    "pretrained": "(a) general-domain LM only",
    "no_unfreezing": "(a) + (b) LM fine-tuning, all layers trained at once",
    "ulmfit": "(a) + (b) + gradual unfreezing: full ULMFiT",
}


def reviewer_consistency(frame: pd.DataFrame) -> dict:
    """How often the reviewers' own star ratings disagree with their own recommendation, at the best
    threshold: a reader who recovered the stars from the text exactly would still err this often."""
    frame = frame[frame["Review Text"].notna()]
    errors = {t: float(((frame["Rating"] >= t).astype(int) != frame["Recommended IND"]).mean()) for t in range(2, 6)}
    best = min(errors, key=errors.get)
    return {"error": errors[best], "threshold": best}


def human_baseline(facts: dict) -> HumanBaseline | None:
    """The reviewers' consistency as the human baseline, when the prepare stage measured it."""
    if "human" not in facts:
        return None
    h = facts["human"]
    return HumanBaseline(h["error"], (
        f"the reviewers' own consistency: their star rating (>= {h['threshold']} stars -> recommended) "
        f"disagrees with their own recommendation on {h['error']:.1%} of the reviews; a reader who recovered "
        "the stars from the text exactly would still err that often (no human study of this data exists)"))


def ablation_table(classify: dict, ablation: pd.DataFrame | None) -> pd.DataFrame:
    """One row per variant: the ablation stage's rows, then the full method from classify."""
    columns = ["variant", "val_error", "train_error", "seconds"]
    rows = [{"variant": "ulmfit", **{k: classify[k] for k in columns[1:]}}]
    if ablation is not None:
        rows = ablation[columns].to_dict("records") + rows
    return pd.DataFrame(rows)


def ablation_md(table: pd.DataFrame, m: dict) -> str:
    lines = ["# ULMFiT ablation", "",
             f"Validation error on {m['n_val']:,.0f} held-out documents (seeded random split); majority class "
             f"{m['val_majority_error']:.2%}.", "",
             "| classifier | val error | train error | seconds |", "|---|---:|---:|---:|"]
    for r in table.itertuples():
        lines.append(f"| {VARIANTS.get(r.variant, r.variant)} | {r.val_error:.2%} | {r.train_error:.2%} | {r.seconds:.0f} |")
    lines += ["", "Language models (next-token accuracy / perplexity on held-out text):", "",
              f"- (a) general corpus: {m['pretrain_val_acc']:.1%} / {m['pretrain_val_ppl']:.1f}",
              f"- (a) on the target texts before fine-tuning: {m['finetune_before_val_acc']:.1%} / "
              f"{m['finetune_before_val_ppl']:.1f}",
              f"- (b) after fine-tuning on the target texts: {m['finetune_val_acc']:.1%} / {m['finetune_val_ppl']:.1f}",
              f"- target words found in the general vocabulary: {m['vocab_coverage']:.1%}", "",
              "Anchor (fastai 2.8.12 on the same reviews, 80/20 split, AWD-LSTM 200/400/2, no downloaded weights): "
              f"from scratch {FASTAI_ANCHOR_ERROR['scratch']:.2%}, LM fine-tuning + gradual unfreezing "
              f"{FASTAI_ANCHOR_ERROR['ulmfit']:.2%}, majority {FASTAI_ANCHOR_ERROR['majority']:.2%}.", "",
              "Each row is one training run (one seed). On the default data the same classifier varies by about one "
              "point from seed to seed (`python benchmarks/ulmfit_labels.py`), so smaller differences are noise.", "",
              "![ablation](ablation.png)"]
    return "\n".join(lines) + "\n"
