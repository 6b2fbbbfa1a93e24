"""The ulmfit task's params. Defaults are sized for minutes on 2 CPU cores; the paper's AWD-LSTM
(emb_sz 400, n_hid 1150, 3 layers) and longer schedules are a params change."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator import Params

Ablation = Literal["scratch", "pretrained", "no_unfreezing"]


class LMStage(Params):
    epochs: int = Field(1, gt=0)
    lr: float = Field(4e-3, gt=0, le=1, description="peak learning rate of the top layer group (STLR)")
    bs: int = Field(32, gt=0)
    bptt: int = Field(70, ge=8)
    wd: float = Field(0.01, ge=0)
    max_tokens: int | None = Field(None, gt=0, description="train on the first N tokens (None: all)")


class ClassifierStage(Params):
    train_docs: int | None = Field(3000, gt=0, description="labelled training documents the classifiers see "
                                   "(None: all); the LMs still read every training text, without labels")
    lr: float = Field(0.2, gt=0, le=1, description="peak LR of the head in the first unfreezing phase (halved per phase)")
    final_epochs: int = Field(6, ge=1, description="epochs with every layer unfrozen, after one per group")
    bs: int = Field(64, gt=0)
    max_len: int = Field(150, ge=8, description="tokens per document the classifier reads")
    wd: float = Field(0.01, ge=0)
    drop_mult: float = Field(0.5, ge=0, le=2, description="the classifier's dropout multiplier")


class ULMFiTParams(Params):
    data: str = Field("embedded", description="'embedded' (Women's Clothing reviews), an aclImdb folder or a "
                                              "CSV-standard folder (train.csv + classes.txt)")
    pretrain_corpus: list[str] = Field(["embedded"], min_length=1, description="general-domain text files; "
                                       "'embedded' = King James Bible + fortunes + Shakespeare")
    valid_pct: float = Field(0.2, gt=0, lt=0.5, description="random validation share (the anchor's 80/20)")
    train_dev_pct: float = Field(0.05, gt=0, lt=0.5)
    seed: int = 42
    processes: int = Field(2, ge=1, le=64, description="tokenizer processes")
    max_vocab: int = Field(4_000, ge=100)
    min_freq: int = Field(2, ge=1)
    emb_sz: int = Field(64, gt=0)
    n_hid: int = Field(128, gt=0)
    n_layers: int = Field(2, ge=1, le=6)
    drop_mult: float = Field(0.2, ge=0, le=2, description="scales all five AWD-LSTM dropouts of the LMs")
    clip: float = Field(0.4, gt=0)
    pretrain: LMStage = LMStage(epochs=1, lr=1e-2, max_tokens=1_000_000)
    finetune: LMStage = LMStage(epochs=2, lr=3e-2)
    classifier: ClassifierStage = ClassifierStage()
    ablation: list[Ablation] = Field(["scratch", "pretrained", "no_unfreezing"],
                                     description="extra classifiers for the ablation table")
