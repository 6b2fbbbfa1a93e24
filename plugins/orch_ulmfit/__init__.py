"""ULMFiT (Howard & Ruder 2018): AWD-LSTM language-model pretraining on general text, target LM
fine-tuning, then a classifier with gradual unfreezing, as a task plugin registered through the
``orch`` entry-point group."""

from __future__ import annotations

from orchestrator import Artifact, HumanBaseline, Stage, Task, hookimpl, split_metrics

HUMAN = HumanBaseline(
    error=0.05,
    source=("no rigorous human error is published for review sentiment; for the embedded reviews the report "
            "uses the reviewers' own consistency (their star rating against their recommendation) instead. "
            "For other data this 5% placeholder stands until you set a measured one."),
)


def build_task() -> Task:
    from orch_ulmfit import stages
    from orch_ulmfit.commands import predict_command
    from orch_ulmfit.params import ULMFiTParams

    model = ("emb_sz", "n_hid", "n_layers", "drop_mult", "clip")
    return Task(
        name="ulmfit",
        description="ULMFiT: AWD-LSTM LM pretraining, target LM fine-tuning, classifier with gradual unfreezing",
        params_model=ULMFiTParams,
        metric="error",
        metrics=(*split_metrics("loss"), "*.train_error", "*.val_error", "*.seconds", "seconds", "epoch_seconds",
                 "docs_per_s", "val_majority_error", "val_unk_rate", "vocab_coverage", "vocab_size", "n_*",
                 "tokenize_tokens_per_s", "corpus_*", "pretrain_*", "finetune_*"),
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, ("data", "valid_pct", "train_dev_pct", "processes", "max_vocab",
                                              "min_freq"),
                  description="load, split, tokenize (spaCy, parallel), vocabulary, ids"),
            Stage("corpus", stages.corpus, ("pretrain_corpus", "processes", "max_vocab", "min_freq",
                                            "pretrain.max_tokens"),
                  description="tokenize the general-domain corpus"),
            Stage("pretrain", stages.pretrain, (*model, "pretrain"), inputs=("corpus",), tracked=True,
                  description="(a) general-domain AWD-LSTM language model"),
            Stage("finetune", stages.finetune, (*model, "finetune"), inputs=("prepare", "pretrain"),
                  description="(b) target LM fine-tuning: vocabulary conversion, discriminative LRs, STLR"),
            Stage("classify", stages.classify, (*model, "classifier"), inputs=("prepare", "finetune"),
                  description="(c) classifier: concat pooling, gradual unfreezing, discriminative LRs, STLR"),
            Stage("ablation", stages.ablation, (*model, "classifier", "ablation"),
                  inputs=("prepare", "pretrain", "finetune"),
                  description="the same classifier from scratch, from (a) only, without gradual unfreezing"),
            Stage("report", stages.report, ("ablation",),
                  inputs=("prepare", "pretrain", "finetune", "classify", "ablation"),
                  description="ablation table, curves, bias/variance"),
        ),
        artifacts=(
            Artifact("lm.pt", "model", "pretrain", "(a) the general-domain language model"),
            Artifact("vocab.txt", "model", "pretrain", "(a)'s vocabulary"),
            Artifact("encoder.pt", "model", "finetune", "(b) the fine-tuned AWD-LSTM encoder alone"),
            Artifact("classifier.*", "model", "classify", "(c) the classifier: state_dict, config and vocabulary"),
            Artifact("ablation.csv", "table", "ablation", "validation error of every variant"),
            Artifact("*.png", "plot", "report", "the ablation as bars, classifier and LM curves"),
            Artifact("ablation.md", "report", "report", "the ablation table and the language models' figures"),
        ),
        commands={"predict": predict_command},
        space={
            "drop_mult": {"low": 0.1, "high": 1.5},
            "classifier.lr": {"low": 1e-3, "high": 5e-2, "scale": "log"},
            "finetune.lr": {"low": 1e-3, "high": 2e-2, "scale": "log"},
            "finetune.bptt": {"choices": [50, 70, 90]},
        },
    )


@hookimpl
def orch_register_tasks() -> list[Task]:
    return [build_task()]
