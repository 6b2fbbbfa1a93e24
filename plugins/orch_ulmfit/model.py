"""AWD-LSTM (Merity et al. 2017) as ULMFiT uses it, with its language-model and classifier heads.

Regularization, each scaled by one ``drop_mult``:
  embed_p   embedding dropout: whole word rows of the embedding matrix dropped (and rescaled)
  input_p   locked dropout on the embeddings fed to the first LSTM
  weight_p  DropConnect on every LSTM's hidden-to-hidden matrix (WeightDrop)
  hidden_p  locked dropout between LSTM layers
  output_p  locked dropout before the decoder (LM) / the classifier's pooled features
"Locked" (variational) dropout draws one mask per sequence and reuses it at every time step.
Training adds AWD-LSTM's activation regularization (AR, on the last layer's dropped outputs) and
temporal activation regularization (TAR, on the steps of its raw outputs): ``ar_tar``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PAD_ID = 1
LM_DROPS = {"output_p": 0.1, "hidden_p": 0.15, "input_p": 0.25, "embed_p": 0.02, "weight_p": 0.2}
CLAS_DROPS = {"output_p": 0.4, "hidden_p": 0.3, "input_p": 0.4, "embed_p": 0.05, "weight_p": 0.5}


def dropout_mask(like: torch.Tensor, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """Keep with probability 1 - p, kept entries scaled by 1 / (1 - p). Drawn as uniform < 1 - p:
    twice as fast on CPU as ``bernoulli_`` (the weight drop draws 0.8M of these every batch)."""
    return like.new_empty(shape).uniform_().lt_(1 - p).div_(1 - p)


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared across time: input (batch, time, features)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        return x * dropout_mask(x, (x.shape[0], 1, x.shape[2]), self.p)


class EmbeddingDropout(nn.Module):
    """Drop whole rows of the embedding matrix: a dropped word is zero wherever it occurs. It does not
    own the embedding (which would register the same matrix twice in the state dict)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, emb: nn.Embedding, words):
        weight = emb.weight
        if self.training and self.p > 0:
            weight = weight * dropout_mask(weight, (weight.shape[0], 1), self.p)
        return F.embedding(words, weight, emb.padding_idx)


class WeightDrop(nn.Module):
    """DropConnect on an nn.LSTM's hidden-to-hidden weights: a fresh mask on the matrix every forward
    pass (the same mask for every time step, which is what regularizes the recurrence)."""

    def __init__(self, module: nn.LSTM, p: float, names=("weight_hh_l0",)):
        super().__init__()
        self.module, self.p, self.names = module, p, names

    def forward(self, *args):
        if not self.training or self.p == 0:
            return self.module(*args)
        params = {}
        for n in self.names:
            w = getattr(self.module, n)
            params[n] = w * dropout_mask(w, w.shape, self.p)
        import warnings

        with warnings.catch_warnings():  # cuDNN: the dropped weights are not one contiguous chunk
            warnings.simplefilter("ignore", UserWarning)
            return torch.func.functional_call(self.module, params, args)


class AWDLSTM(nn.Module):
    """Embedding -> n stacked 1-layer LSTMs (the last one's size = emb_sz, so the decoder can tie)."""

    def __init__(self, vocab: int, emb_sz: int, n_hid: int, n_layers: int, drops: dict[str, float]):
        super().__init__()
        self.emb_sz, self.n_hid, self.n_layers = emb_sz, n_hid, n_layers
        self.encoder = nn.Embedding(vocab, emb_sz, padding_idx=PAD_ID)
        self.encoder.weight.data.uniform_(-0.1, 0.1)
        self.encoder_dp = EmbeddingDropout(drops["embed_p"])
        sizes = [emb_sz] + [n_hid] * (n_layers - 1) + [emb_sz]
        self.rnns = nn.ModuleList(WeightDrop(nn.LSTM(a, b, batch_first=True), drops["weight_p"])
                                  for a, b in zip(sizes, sizes[1:]))
        self.input_dp = LockedDropout(drops["input_p"])
        self.hidden_dps = nn.ModuleList(LockedDropout(drops["hidden_p"]) for _ in range(n_layers))
        self.hidden: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def reset(self) -> None:
        """Forget the state carried across batches (a new stream, or a new document batch)."""
        self.hidden = None

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x (batch, time) -> (raw outputs, dropped outputs) of every layer. The final hidden state is
        kept (detached) for the next call: the model is stateful across batches."""
        if self.hidden is not None and self.hidden[0][0].shape[1] != x.shape[0]:
            self.hidden = None
        out = self.input_dp(self.encoder_dp(self.encoder, x))
        raw_outputs, outputs, new_hidden = [], [], []
        for i, (rnn, hdp) in enumerate(zip(self.rnns, self.hidden_dps)):
            out, h = rnn(out, None if self.hidden is None else self.hidden[i])
            new_hidden.append((h[0].detach(), h[1].detach()))
            raw_outputs.append(out)
            if i < self.n_layers - 1:
                out = hdp(out)
            outputs.append(out)
        self.hidden = new_hidden
        return raw_outputs, outputs

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.encoder, self.encoder_dp]] + [[rnn, dp] for rnn, dp in zip(self.rnns, self.hidden_dps)]


class LMDecoder(nn.Module):
    def __init__(self, vocab: int, emb_sz: int, output_p: float, tie: nn.Embedding | None):
        super().__init__()
        self.output_dp = LockedDropout(output_p)
        self.decoder = nn.Linear(emb_sz, vocab)
        if tie is not None:
            self.decoder.weight = tie.weight  # tied encoder and decoder: one matrix
        nn.init.zeros_(self.decoder.bias)

    def forward(self, outputs):
        dropped = self.output_dp(outputs[-1])
        return self.decoder(dropped), dropped


def ar_tar(raw: torch.Tensor, dropped: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """AWD-LSTM's penalties on the last LSTM layer, (batch, time, features): AR, ``alpha`` times the
    mean square of its dropped outputs (small activations), and TAR, ``beta`` times the mean square
    of the change of its raw outputs from one step to the next (slowly changing states)."""
    penalty = alpha * dropped.pow(2).mean() if alpha else raw.new_zeros(())
    if beta and raw.shape[1] > 1:
        penalty = penalty + beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    return penalty


class LanguageModel(nn.Module):
    def __init__(self, vocab: int, emb_sz: int, n_hid: int, n_layers: int, drop_mult: float = 1.0, tie: bool = True):
        super().__init__()
        drops = {k: v * drop_mult for k, v in LM_DROPS.items()}
        self.encoder = AWDLSTM(vocab, emb_sz, n_hid, n_layers, drops)
        self.decoder = LMDecoder(vocab, emb_sz, drops["output_p"], self.encoder.encoder if tie else None)

    def reset(self) -> None:
        self.encoder.reset()

    def forward(self, x, activations: bool = False):
        """Logits (batch, time, vocab); with ``activations``, also the last layer's raw and dropped
        outputs (for ``ar_tar``)."""
        raw, outputs = self.encoder(x)
        logits, dropped = self.decoder(outputs)
        return (logits, raw[-1], dropped) if activations else logits

    def layer_groups(self) -> list[list[nn.Module]]:
        """fastai's LM split: each LSTM, then embedding + decoder (tied) last."""
        groups = self.encoder.layer_groups()
        return groups[1:] + [groups[0] + [self.decoder]]


def masked_concat_pool(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[last state, max pool, mean pool] over the real (unpadded) time steps: (batch, 3 * features).
    Documents are padded at the end, so the last state is at position length - 1."""
    b, t, _ = outputs.shape
    mask = (torch.arange(t, device=outputs.device)[None, :] < lengths[:, None]).unsqueeze(-1)
    last = outputs[torch.arange(b, device=outputs.device), lengths - 1]
    maxed = outputs.masked_fill(~mask, float("-inf")).max(dim=1).values
    mean = (outputs * mask).sum(1) / lengths[:, None].to(outputs.dtype)
    return torch.cat([last, maxed, mean], dim=1)


class PoolingClassifier(nn.Module):
    """Concat pooling, then [batch norm, dropout, linear, ReLU] blocks and a last linear layer."""

    def __init__(self, emb_sz: int, hidden: int, n_classes: int, output_p: float):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm1d(3 * emb_sz), nn.Dropout(output_p), nn.Linear(3 * emb_sz, hidden), nn.ReLU(),
            nn.BatchNorm1d(hidden), nn.Dropout(0.1), nn.Linear(hidden, n_classes))

    def forward(self, outputs, lengths):
        return self.layers(masked_concat_pool(outputs, lengths))


class Classifier(nn.Module):
    def __init__(self, vocab: int, emb_sz: int, n_hid: int, n_layers: int, n_classes: int, drop_mult: float = 1.0,
                 head_hidden: int = 50):
        super().__init__()
        drops = {k: v * drop_mult for k, v in CLAS_DROPS.items()}
        self.encoder = AWDLSTM(vocab, emb_sz, n_hid, n_layers, drops)
        self.head = PoolingClassifier(emb_sz, head_hidden, n_classes, drops["output_p"])

    def forward(self, x, lengths, activations: bool = False):
        """Logits (batch, classes); with ``activations``, also the last layer's outputs (for ``ar_tar``)."""
        self.encoder.reset()  # each batch is a new set of documents
        last = self.encoder(x)[1][-1]
        logits = self.head(last, lengths)
        return (logits, last) if activations else logits

    def layer_groups(self) -> list[list[nn.Module]]:
        """fastai's classifier split: embedding, each LSTM, the head (unfrozen last to first)."""
        return self.encoder.layer_groups() + [[self.head]]


def encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The AWD-LSTM's weights alone: what the next stage loads."""
    return {k: v for k, v in model.encoder.state_dict().items()}


def load_encoder(model: nn.Module, state: dict[str, torch.Tensor], source: str = "encoder") -> None:
    from orchestrator import UserError

    own = model.encoder.state_dict()
    bad = [k for k in own if k not in state or state[k].shape != own[k].shape]
    if bad:
        k = bad[0]
        got = tuple(state[k].shape) if k in state else "missing"
        raise UserError(f"{source}: encoder does not match the model ({k}: expected {tuple(own[k].shape)}, got {got}); "
                        "check the vocabulary and emb_sz / n_hid / n_layers")
    model.encoder.load_state_dict(state)


def convert_embeddings(weight: torch.Tensor, old_itos: list[str], new_itos: list[str]) -> tuple[torch.Tensor, int]:
    """Rows for a new vocabulary: known words copied, unknown words set to the mean row (ULMFiT's
    conversion from the general-domain vocabulary to the target's). Returns (matrix, words found)."""
    old = {w: i for i, w in enumerate(old_itos)}
    mean = weight.mean(0)
    out = mean.repeat(len(new_itos), 1)
    idx_new = [i for i, w in enumerate(new_itos) if w in old]
    out[idx_new] = weight[[old[new_itos[i]] for i in idx_new]]
    return out, len(idx_new)


def convert_lm(state: dict[str, torch.Tensor], old_itos: list[str], new_itos: list[str]) -> tuple[dict, int]:
    """A language model's state with its embedding (and tied decoder) rows moved to a new vocabulary:
    ULMFiT's step from (a)'s general vocabulary to the target's. Returns (state, words found)."""
    key = "encoder.encoder.weight"
    weight, found = convert_embeddings(state[key], old_itos, new_itos)
    bias, old = state["decoder.decoder.bias"], {w: i for i, w in enumerate(old_itos)}
    new_bias = torch.stack([bias[old[w]] if w in old else bias.mean() for w in new_itos])
    return {**state, key: weight, "decoder.decoder.weight": weight, "decoder.decoder.bias": new_bias}, found


def build_classifier(config: dict) -> Classifier:
    """The classifier a saved ``classifier.json`` describes (``orch predict ulmfit``)."""
    return Classifier(config["vocab_size"], config["emb_sz"], config["n_hid"], config["n_layers"],
                      len(config["classes"]), config["drop_mult"])
