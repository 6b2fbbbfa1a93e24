"""Character-level language models, from three characters to a stateful LSTM, with generation: the
fast.ai lesson's progression as a task plugin, registered through the ``orch`` entry-point group."""

from __future__ import annotations

from orchestrator import hookimpl
from orchestrator.task import Artifact, HumanBaseline, Stage, Task

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
    from orch_charrnn.generate import generate_command
    from orch_charrnn.params import CharRNNParams

    prep = tuple(f"charrnn.{k}" for k in ("data", "max_chars", "valid_pct", "train_dev_pct", "block", "seed"))
    train = tuple(f"charrnn.{k}" for k in ("seed", "arch", "compare", "n_fac", "n_hidden", "n_layers", "dropout",
                                          "context", "bptt", "bs", "epochs", "lr", "clip", "temperature",
                                          "sample_chars"))
    return Task(
        name="charrnn",
        description="Character-level language models (char3 -> charloop -> RNN -> stateful -> LSTM/GRU), text generation",
        params_model=CharRNNParams,
        metric="bpc",
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, prep, description="read text, vocabulary, splits, reference bpc"),
            Stage("train", stages.train, train, tracked=True, description="train every architecture in compare"),
            Stage("report", stages.report, (), description="progression table and chart, samples, bias/variance"),
        ),
        artifacts=(
            Artifact("model.pt", "model", "state_dict of the run's model (with model.json and vocab.json)"),
            Artifact("samples/epoch_NN.txt", "text", "a sample at the end of every epoch"),
            Artifact("comparison.csv", "table", "every architecture's figures"),
            Artifact("comparison.png", "plot", "validation bits per character against unigram, bigram, xz, bz2"),
            Artifact("samples.md", "text", "samples at temperatures 0.5, 0.8 and 1.0"),
            Artifact("report.md", "report", "bias/variance report"),
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
