"""The next-step predictor: frame t-1 of a piano roll in, 88 Bernoulli logits for frame t out.

The recurrent core is torch's fused nn.RNN (tanh) / nn.GRU / nn.LSTM, which run on cuDNN on a GPU;
cells.py writes the same equations out by hand for reference and tests. A linear head maps the
hidden state to one logit per key, so the keys of a frame are independent given the past (the
model of Chung et al. 2014 and Boulanger-Lewandowski et al. 2012's RNN baseline).

Sizes: `hidden_for_params` solves for the hidden size whose model comes closest to a parameter
budget, so cells are compared at equal size as the paper did (Table 1).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from seqgate.errors import UserError

CELLS = ("tanh", "gru", "lstm")
# Number of weight blocks per cell: one for tanh, three gates for GRU, four for LSTM.
GATE_BLOCKS = {"tanh": 1, "gru": 3, "lstm": 4}
CHECKPOINT_FORMAT = 1
# Below this many multiply-adds per time step, extra CPU threads only add synchronisation: on a
# 2-core CPU, 8 pieces of a hidden-41 GRU sampled 2-4x slower on 2 threads than on 1, and even 64
# pieces of a hidden-512 GRU (22M per step) were faster on one; training a 20k-parameter GRU on
# JSB took 22 s for 20 epochs on 2 threads and 8 s on 1 with the other core busy.
ONE_THREAD_WORK_LIMIT = 25_000_000


def check_cell(cell: str) -> str:
    cell = cell.lower()
    if cell not in CELLS:
        raise UserError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    return cell


def count_parameters(cell: str, hidden: int, layers: int = 1, n_keys: int = 88) -> int:
    """Parameters of NextStepModel, computed without building it (torch keeps two bias vectors)."""
    blocks = GATE_BLOCKS[check_cell(cell)]
    total = 0
    for layer in range(layers):
        inputs = n_keys if layer == 0 else hidden
        total += blocks * hidden * (inputs + hidden + 2)
    return total + hidden * n_keys + n_keys


def hidden_for_params(cell: str, budget: int, layers: int = 1, n_keys: int = 88) -> int:
    """The hidden size whose model has the parameter count closest to `budget` (at least 1)."""
    if budget <= 0:
        raise UserError("--params must be a positive number of parameters")
    best, best_gap = 1, math.inf
    hidden = 1
    while True:
        gap = count_parameters(cell, hidden, layers, n_keys) - budget
        if abs(gap) < best_gap:
            best, best_gap = hidden, abs(gap)
        if gap > 0:
            return best
        hidden += 1


def shift_right(rolls: torch.Tensor) -> torch.Tensor:
    """Inputs for next-step prediction: an all-zero frame, then every frame but the last.

    Predicting frame 0 from silence means every frame of a piece is scored, so NLL per frame
    counts all frames of a split (the convention of REFERENCE.md).
    """
    return torch.cat([torch.zeros_like(rolls[:, :1]), rolls[:, :-1]], dim=1)


class NextStepModel(nn.Module):
    def __init__(self, cell: str, hidden: int, layers: int = 1, dropout: float = 0.0,
                 n_keys: int = 88):
        super().__init__()
        self.cell = check_cell(cell)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.dropout_p = float(dropout)
        self.n_keys = int(n_keys)
        core = {"tanh": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[self.cell]
        extra = {"nonlinearity": "tanh"} if self.cell == "tanh" else {}
        self.core = core(n_keys, hidden, num_layers=layers, batch_first=True,
                         dropout=dropout if layers > 1 else 0.0, **extra)
        # The fused layers only drop out between layers; with one layer, dropout acts on the
        # hidden state before the output head, which is where a small model overfits.
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_keys)

    def config(self) -> dict:
        return {"cell": self.cell, "hidden": self.hidden, "layers": self.layers,
                "dropout": self.dropout_p, "n_keys": self.n_keys}

    def forward(self, inputs: torch.Tensor, state=None):
        """inputs: (batch, time, keys) previous frames -> (logits of the same shape, state)."""
        outputs, state = self.core(inputs, state)
        return self.head(self.drop(outputs)), state

    def init_output_bias(self, key_frequency: torch.Tensor) -> None:
        """Start the head at each key's training frequency (as log-odds).

        An untrained head predicts p = 0.5 for all 88 keys (about 61 nats per frame); starting from
        the frequencies puts the first epoch at the ~11 nats of the frequency baseline, and the
        recurrent weights learn the sequence instead of the marginals.
        """
        p = key_frequency.clamp(1e-4, 1 - 1e-4).to(self.head.bias)
        with torch.no_grad():
            self.head.bias.copy_(torch.log(p) - torch.log1p(-p))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@contextlib.contextmanager
def few_threads_for_small_work(model: NextStepModel, batch: int) -> Iterator[None]:
    """Run a small model's steps on one CPU thread, then restore the caller's thread count.

    A step of a small recurrent model is microseconds of work per op; splitting each op over
    threads costs more in synchronisation than it saves. Large models or batches keep all threads.
    """
    work = batch * model.hidden * (model.n_keys + model.hidden + model.n_keys)
    threads = torch.get_num_threads()
    if work >= ONE_THREAD_WORK_LIMIT or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_model(config: dict) -> NextStepModel:
    return NextStepModel(config["cell"], config["hidden"], config.get("layers", 1),
                         config.get("dropout", 0.0), config.get("n_keys", 88))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint with weights_only=True: tensors and plain data only, never code."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types; all mean "not a checkpoint we trust"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"refusing to load {path}: not a plain-tensor seqgate checkpoint "
                        f"({first_line[:160]})") from None
    if not isinstance(checkpoint, dict) or "model_config" not in checkpoint or "model" not in checkpoint:
        raise UserError(f"{path} is not a seqgate checkpoint")
    return checkpoint


def load_model(path: str | Path, map_location="cpu") -> tuple[NextStepModel, dict]:
    """The model stored in a checkpoint, in eval mode, and the whole checkpoint dict."""
    checkpoint = load_checkpoint(path, map_location)
    model = build_model(checkpoint["model_config"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise UserError(f"{path}: weights do not fit the stored model config ({str(error)[:120]})") from None
    model.eval()
    return model, checkpoint
