"""What both sides of benchmarks/peer_fastai.py share (each runs in its own venv: plain NumPy and torch)."""

import json
import random
import sys

import numpy as np
import torch


def docs_of(flat, lens):
    """The documents of a flat array of token ids, given their lengths."""
    return np.split(flat, np.cumsum(lens)[:-1])


def main(parts: dict) -> None:
    """``python SIDE.py DATA.npz PART SETTINGS_JSON``: train one part, print its figures as JSON."""
    data_file, part, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    torch.set_num_threads(args["threads"])
    seed = args.get("seed", 0)  # one per repeat: the figures of quality are means over seeds
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)  # fastai's data loaders draw their shuffling from Python's random
    with np.load(data_file) as z:
        d = {k: z[k] for k in z.files}
    print(json.dumps(parts[part](d, args)))
