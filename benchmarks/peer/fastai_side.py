"""The fastai side of benchmarks/peer_fastai.py: runs in the throwaway venv that has fastai, on the
data file the driver wrote (the same token ids, labels and ratings orch's side gets). Prints one JSON
object: for each model, the seconds of training (validation excluded), the items per second and the
final validation figures."""

import time
from functools import partial

import numpy as np
import torch
from common import docs_of, main
from fastai.collab import TabularCollab, collab_learner
from fastai.tabular.all import Categorify, TransformBlock
from fastai.text.all import (AWD_LSTM, Callback, CrossEntropyLossFlat, DataLoaders, LMDataLoader, LMLearner, SortedDL,
                             TensorCategory, TensorText, TextLearner, accuracy, awd_lstm_clas_config,
                             awd_lstm_clas_split, awd_lstm_lm_config, awd_lstm_lm_split, error_rate,
                             get_language_model, get_text_classifier, pad_input_chunk)


def tensors(flat, lens):
    return [torch.from_numpy(doc) for doc in docs_of(flat, lens)]


class Timer(Callback):
    """Seconds spent in training batches (not validation) and the items trained on."""

    order = -100

    def __init__(self, count):
        self.count, self.seconds, self.items = count, 0.0, 0  # not in before_fit: validate() calls it too

    def before_train(self):
        self.start = time.perf_counter()

    def after_batch(self):
        if self.training:
            self.items += self.count(self.yb[0])

    def after_train(self):
        self.seconds += time.perf_counter() - self.start


def language_model(d, a):
    timer = Timer(lambda y: y.numel())
    train = LMDataLoader(tensors(d["lm_train"], d["lm_train_lens"]), lens=d["lm_train_lens"], bs=a["bs"],
                         seq_len=a["bptt"], shuffle=False, num_workers=0)
    val = LMDataLoader(tensors(d["lm_val"], d["lm_val_lens"]), lens=d["lm_val_lens"], bs=a["bs"], seq_len=a["bptt"],
                       shuffle=False, num_workers=0)
    config = {**awd_lstm_lm_config, "emb_sz": a["emb"], "n_hid": a["hid"], "n_layers": a["layers"]}
    model = get_language_model(AWD_LSTM, int(d["vocab_size"]), config=config, drop_mult=a["lm_drop_mult"])
    learn = LMLearner(DataLoaders(train, val, device="cpu"), model, loss_func=CrossEntropyLossFlat(),
                      splitter=awd_lstm_lm_split, metrics=[accuracy], cbs=[timer])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(a["lm_epochs"], a["lm_lr"], wd=a["wd"])
        val_loss, val_acc = learn.validate()
    return {"seconds": timer.seconds, "tokens": timer.items, "tokens_per_s": timer.items / timer.seconds,
            "val_loss": float(val_loss), "val_acc": float(val_acc)}


def classifier(d, a):
    timer = Timer(len)
    train = [(TensorText(t), TensorCategory(int(y))) for t, y in zip(tensors(d["clf_train"], d["clf_train_lens"]),
                                                                     d["clf_train_y"])]
    val = [(TensorText(t), TensorCategory(int(y))) for t, y in zip(tensors(d["clf_val"], d["clf_val_lens"]),
                                                                   d["clf_val_y"])]
    chunk = partial(pad_input_chunk, seq_len=a["bptt"])
    dls = DataLoaders(SortedDL(train, before_batch=chunk, bs=a["clf_bs"], shuffle=True, num_workers=0),
                      SortedDL(val, before_batch=chunk, bs=a["clf_bs"], shuffle=False, num_workers=0), device="cpu")
    config = {**awd_lstm_clas_config, "emb_sz": a["emb"], "n_hid": a["hid"], "n_layers": a["layers"]}
    model = get_text_classifier(AWD_LSTM, int(d["vocab_size"]), 2, seq_len=a["bptt"], config=config,
                                drop_mult=a["clf_drop_mult"], max_len=a["bptt"] * 20)
    learn = TextLearner(dls, model, loss_func=CrossEntropyLossFlat(), splitter=awd_lstm_clas_split,
                        metrics=[error_rate], cbs=[timer])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(a["clf_epochs"], a["clf_lr"], wd=a["wd"])
        val_loss, val_error = learn.validate()
    return {"seconds": timer.seconds, "docs": timer.items, "docs_per_s": timer.items / timer.seconds,
            "val_loss": float(val_loss), "val_error": float(val_error)}


def collab(d, a):
    import pandas as pd

    timer = Timer(len)
    frame = pd.DataFrame({"user": d["c_user"], "item": d["c_item"], "rating": d["c_rating"].astype(np.float32)})
    split = d["c_split"]
    to = TabularCollab(frame, [Categorify], cat_names=["user", "item"], y_names=["rating"], y_block=TransformBlock(),
                       splits=(list(np.flatnonzero(split == 0)), list(np.flatnonzero(split == 1))))
    dls = to.dataloaders(bs=a["collab_bs"], num_workers=0, device="cpu")
    learn = collab_learner(dls, n_factors=a["n_factors"], y_range=(0, 5.5), cbs=[timer])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(a["collab_epochs"], a["collab_lr"], wd=a["collab_wd"])
        val_mse = learn.validate()[0]
    return {"seconds": timer.seconds, "seconds_per_epoch": timer.seconds / a["collab_epochs"],
            "ratings_per_s": timer.items / timer.seconds, "val_rmse": float(val_mse) ** 0.5}


if __name__ == "__main__":
    main({"language_model": language_model, "classifier": classifier, "collab": collab})
