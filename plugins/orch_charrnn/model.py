"""The fast.ai lesson's progression of character models, each ``forward(x, state) -> (logits, state)``
over a (batch, time) block of character ids, predicting the next character at every step.

  char3      the previous 3 characters -> the next; one input layer shared by the 3 positions
  charloop   the previous ``context`` characters fed one at a time through the same layer (a loop)
  rnn        nn.RNN over the block; the hidden state starts from zero at every block, warmed up on the
             ``context`` characters before it (no predictions there)
  stateful   nn.RNN whose hidden state is carried across blocks and detached (truncated BPTT)
  lstm, gru  the same with multi-layer LSTM / GRU cells and dropout between layers

For char3, charloop and rnn the "state" is the last characters of the previous block, so every model
predicts the first characters of a block from real context: without the warm-up the rnn would guess
each block's first character blind, which costs it its lead over charloop (measured: 2.539 against
2.516 bits per character at the default budget; 2.500 with it). The stateful models carry their hidden
state instead, which holds the whole history.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from orch_charrnn.data import PAD, Vocab
from orchestrator import UserError


class WindowModel(nn.Module):
    """Base of char3 / charloop: predicts from a fixed window of preceding characters."""

    window: int
    carries_state = True

    def windows(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """(batch, time, window) ids: for each step, the ``window`` characters ending there."""
        if state is None:
            state = torch.zeros(x.shape[0], self.window - 1, dtype=x.dtype, device=x.device)
        full = torch.cat([state, x], dim=1)
        return full.unfold(1, self.window, 1)

    def next_state(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        full = x if state is None else torch.cat([state, x], dim=1)
        if full.shape[1] < self.window - 1:
            full = F.pad(full, (self.window - 1 - full.shape[1], 0))
        return full[:, -(self.window - 1):].detach()


class Char3(WindowModel):
    """3 characters -> the 4th: each embedded, through the same input layer, summed, one hidden layer."""

    window = 3

    def __init__(self, vocab: int, n_fac: int, n_hidden: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, n_fac)
        self.l_in = nn.Linear(n_fac, n_hidden)  # shared by the three positions
        self.l_hidden = nn.Linear(n_hidden, n_hidden)
        self.l_out = nn.Linear(n_hidden, vocab)

    def forward(self, x, state=None):
        w = self.windows(x, state)  # (b, t, 3)
        h = torch.zeros(*w.shape[:2], self.l_hidden.in_features, device=x.device)
        for k in range(self.window):  # the lesson's unrolled form: h = tanh(W_h(h + relu(W_in(c_k))))
            h = torch.tanh(self.l_hidden(h + F.relu(self.l_in(self.emb(w[:, :, k])))))
        return self.l_out(h), self.next_state(x, state)


class CharLoop(Char3):
    """The same layers applied in a loop over ``context`` characters."""

    def __init__(self, vocab: int, n_fac: int, n_hidden: int, context: int):
        super().__init__(vocab, n_fac, n_hidden)
        self.window = context


class SequenceModel(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU over the block, a prediction at every step."""

    def __init__(self, cell: str, vocab: int, n_fac: int, n_hidden: int, n_layers: int, dropout: float,
                 carries_state: bool):
        super().__init__()
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.emb = nn.Embedding(vocab, n_fac)
        self.rnn = rnn(n_fac, n_hidden, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.l_out = nn.Linear(n_hidden, vocab)
        self.carries_state = carries_state

    def forward(self, x, state=None):
        out, state = self.rnn(self.emb(x), state)
        return self.l_out(self.drop(out)), detach(state)


class WarmedRNN(SequenceModel):
    """nn.RNN from a zero state at every block, first run over the ``context`` characters before it."""

    def __init__(self, vocab: int, n_fac: int, n_hidden: int, context: int):
        super().__init__("rnn", vocab, n_fac, n_hidden, 1, 0.0, carries_state=True)
        self.window = context

    def forward(self, x, state=None):
        full = x if state is None else torch.cat([state, x], dim=1)
        out, _ = self.rnn(self.emb(full))
        return self.l_out(self.drop(out[:, -x.shape[1]:])), full[:, -self.window:].detach()


def detach(state):
    """Cut the graph at the block boundary: gradients flow through ``bptt`` steps only."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


MODEL_KEYS = ("n_fac", "n_hidden", "context", "n_layers", "dropout")


def build(arch: str, vocab: int, p) -> nn.Module:
    if arch == "char3":
        return Char3(vocab, p.n_fac, p.n_hidden)
    if arch == "charloop":
        return CharLoop(vocab, p.n_fac, p.n_hidden, p.context)
    if arch == "rnn":
        return WarmedRNN(vocab, p.n_fac, p.n_hidden, p.context)
    if arch == "stateful":
        return SequenceModel("rnn", vocab, p.n_fac, p.n_hidden, 1, 0.0, carries_state=True)
    if arch in ("lstm", "gru"):
        return SequenceModel(arch, vocab, p.n_fac, p.n_hidden, p.n_layers, p.dropout, carries_state=True)
    raise ValueError(f"unknown architecture {arch!r}")


def config(arch: str, vocab: int, p) -> dict:
    """What ``build`` needs, as saved beside the weights."""
    return {"arch": arch, "vocab_size": vocab, **{k: getattr(p, k) for k in MODEL_KEYS}}


def from_config(cfg: dict) -> nn.Module:
    from types import SimpleNamespace

    return build(cfg["arch"], cfg["vocab_size"], SimpleNamespace(**cfg))


def load(folder: Path):
    """Model and vocabulary from a train output folder (weights only: no pickled code runs)."""
    from orchestrator import load_model

    return load_model(folder, "model", from_config), Vocab.load(Path(folder) / "vocab.json")


@torch.no_grad()
def sample(model, vocab: Vocab, prompt: str, n_chars: int, temperature: float = 0.8, top_k: int | None = None,
           seed: int = 0, device="cpu") -> str:
    """Continue ``prompt`` by ``n_chars`` characters. An empty prompt starts from a line break."""
    if temperature <= 0:
        raise UserError(f"--temperature: must be > 0, got {temperature}")
    prompt = prompt or "\n"
    unknown = sorted({c for c in prompt if c not in vocab.index or c == PAD})
    if unknown:
        raise UserError(f"--prompt: characters not in the model's vocabulary: {''.join(unknown)!r}")
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.from_numpy(vocab.encode(prompt)).unsqueeze(0).to(device)
    logits, state = model(x, None)
    out = []
    for _ in range(n_chars):
        last = logits[0, -1].float().cpu() / temperature
        last[0] = -float("inf")  # never emit padding
        if top_k:
            kth = torch.topk(last, min(top_k, last.numel())).values[-1]
            last[last < kth] = -float("inf")
        nxt = torch.multinomial(F.softmax(last, dim=-1), 1, generator=gen).item()
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]], device=device), state)
    return prompt + vocab.decode(out)
