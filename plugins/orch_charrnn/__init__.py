"""Character-level language models, from three characters to a stateful LSTM, with generation: the
fast.ai lesson's progression as a task plugin, registered through the ``orch`` entry-point group."""

from __future__ import annotations

from orchestrator import Artifact, HumanBaseline, Plot, Stage, Task, hookimpl, split_metrics

HUMAN = HumanBaseline(
    error=1.3,
    source=(
        "no human score is published for predicting Shakespeare's characters; Shannon's 1951 "
        "prediction experiments put the entropy of printed English at 0.6-1.3 bits per character, "
        "and the upper end, 1.3, stands for Bayes error here (Shannon used 27 symbols; this text "
        "also has case, punctuation and layout, so the true floor is likely a little higher)."
    ),
)


def build_task() -> Task:
    from orch_charrnn import stages
    from orch_charrnn.commands import generate_command
    from orch_charrnn.params import CharRNNParams

    training = ("arch", "compare", "n_fac", "n_hidden", "n_layers", "dropout", "context", "bptt", "bs", "epochs", "lr",
                "clip", "temperature", "sample_chars")
    return Task(
        name="charrnn",
        description="Character-level language models (char3 -> charloop -> RNN -> stateful -> LSTM/GRU), text generation",
        params_model=CharRNNParams,
        metric="bpc",
        metrics=(*split_metrics("acc", "loss", "ppl"), *split_metrics("acc", "bpc", "loss", "ppl", prefix="*."),
                 "chars_per_s", "*.chars_per_s", "train_seconds", "*.train_seconds", "params", "ref_*_bpc", "n_*",
                 "vocab_size"),
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, ("data", "max_chars", "valid_pct", "train_dev_pct", "block", "bs"),
                  description="read text, vocabulary, splits, reference bpc"),
            Stage("train", stages.train, training, inputs=("prepare",), tracked=True,
                  description="train every architecture in compare",
                  plot=Plot(("train_loss", "val_loss"), title="charrnn: loss per epoch", y_label="nats per character")),
            Stage("report", stages.report, ("arch",), inputs=("prepare", "train"),
                  description="progression table and chart, samples, bias/variance"),
        ),
        artifacts=(
            Artifact("model.*", "model", "train", "the run's model: state_dict and config (orchestrator.load_model)"),
            Artifact("vocab.json", "model", "train", "the characters, in id order"),
            Artifact("samples/epoch_*.txt", "text", "train", "a sample at the end of every epoch"),
            Artifact("comparison.csv", "table", "train", "every architecture's figures"),
            Artifact("*.png", "plot", "report", "comparison.png (bpc against unigram, bigram, xz, bz2), loss_curves.png"),
            Artifact("comparison.md", "report", "report", "the progression table"),
            Artifact("samples.md", "text", "report", "samples at temperatures 0.5, 0.8 and 1.0"),
        ),
        space={
            "lr": {"low": 3e-4, "high": 1e-2, "scale": "log"},
            "n_hidden": {"choices": [128, 256, 512]},
            "n_layers": {"low": 1, "high": 3, "type": "int"},
            "dropout": {"low": 0.0, "high": 0.5},
            "bptt": {"choices": [32, 64, 128]},
        },
        commands={"generate": generate_command},
    )


@hookimpl
def orch_register_tasks() -> list[Task]:
    return [build_task()]
