"""orch's side of benchmarks/peer_fastai.py: the same models as fastai_side.py, through orch's own
task code (orch_ulmfit, orch_collab), on the same data file. Prints one JSON object."""

import time

import numpy as np
import torch

from common import docs_of, main


def language_model(d, a):
    from orch_ulmfit.model import LanguageModel
    from orch_ulmfit.train import fit_lm

    seen = {}
    model = LanguageModel(int(d["vocab_size"]), a["emb"], a["hid"], a["layers"], a["lm_drop_mult"])
    speed = fit_lm(model, d["lm_train"], d["lm_val"], epochs=a["lm_epochs"], bs=a["bs"], bptt=a["bptt"],
                   lr=a["lm_lr"], wd=a["wd"], clip=a["clip"], device="cpu", seed=a["seed"], discriminative=False,
                   on_epoch=lambda e, m: seen.update(m))  # returns tokens/s of the training batches
    tokens = (len(d["lm_train"]) // a["bs"] - 1) * a["bs"] * a["lm_epochs"]  # every target of the bs streams
    return {"seconds": tokens / speed, "tokens": tokens, "tokens_per_s": speed, "val_loss": seen["val_loss"],
            "val_acc": seen["val_acc"]}


def classifier(d, a):
    from orch_ulmfit.model import Classifier
    from orch_ulmfit.train import evaluate_classifier, fit_classifier

    train = (docs_of(d["clf_train"], d["clf_train_lens"]), d["clf_train_y"])
    val = (docs_of(d["clf_val"], d["clf_val_lens"]), d["clf_val_y"])
    model = Classifier(int(d["vocab_size"]), a["emb"], a["hid"], a["layers"], 2, a["clf_drop_mult"])
    epochs = []
    # without gradual unfreezing, the schedule is (groups + final_epochs - 1) epochs, all layers trained, at
    # the LR of gradual unfreezing's last phase (lr / 2 ** (groups - 1)): scaled here so that orch trains at
    # fastai's LR, clf_lr
    groups = len(model.layer_groups())
    speed = fit_classifier(model, train, val, lr=a["clf_lr"] * 2 ** (groups - 1), wd=a["wd"], bs=a["clf_bs"], max_len=a["max_len"],
                           clip=a["clip"], device="cpu", seed=a["seed"], gradual=False, discriminative=False,
                           final_epochs=a["clf_epochs"] - groups + 1,
                           on_epoch=lambda e, m: epochs.append(m))
    val_loss, val_error = evaluate_classifier(model, *val, a["clf_bs"], a["max_len"], "cpu")
    docs = len(train[1]) * len(epochs)
    return {"seconds": docs / speed, "docs": docs, "docs_per_s": speed, "val_loss": val_loss, "val_error": val_error}


def collab(d, a):
    from orch_collab.model import EmbeddingDotBias
    from orch_collab.train import SplitTensors, fit, mse

    def part(code):
        rows = d["c_split"] == code
        return SplitTensors(torch.from_numpy(d["c_user"][rows]), torch.from_numpy(d["c_item"][rows]),
                            torch.from_numpy(d["c_rating"][rows].astype(np.float32)))

    train, val = part(0), part(1)
    model = EmbeddingDotBias(int(d["c_user"].max()) + 1, int(d["c_item"].max()) + 1, a["n_factors"], (0.0, 5.5))
    start = time.perf_counter()
    fit(model, train, val, epochs=a["collab_epochs"], bs=a["collab_bs"], lr=a["collab_lr"], wd=a["collab_wd"], seed=a["seed"],
        on_epoch=lambda e, m: None)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "seconds_per_epoch": seconds / a["collab_epochs"],
            "ratings_per_s": len(train) * a["collab_epochs"] / seconds, "val_rmse": mse(model, val) ** 0.5}


if __name__ == "__main__":
    main({"language_model": language_model, "classifier": classifier, "collab": collab})
