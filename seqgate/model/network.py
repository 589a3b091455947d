"""The next-step predictor: frame t-1 of a piano roll in, the distribution of frame t out.

The recurrent core is torch's fused nn.RNN (tanh) / nn.GRU / nn.LSTM, which run on cuDNN on a GPU;
cells.py writes the same equations out by hand for reference and tests. An output head (heads.py)
turns the hidden state into a distribution over the keys of the next frame; the default Bernoulli
head makes the keys independent given the past (the model of Chung et al. 2014 and
Boulanger-Lewandowski et al. 2012's RNN baseline).

The model owns its likelihood (nll, score) and its sampling step (begin, step, drawer): train,
evaluate and sample call these and never the core or the head.

Sizes: `hidden_for_params` solves for the hidden size whose model comes closest to a parameter
budget, so cells are compared at equal size as the paper did (Table 1).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from seqgate.errors import UserError, is_number
from seqgate.model.heads import HEADS, units_per_frame
from seqgate.data.roll import N_KEYS
from seqgate.settings import DEFAULT_HEAD, NADE_UNITS_PER_HIDDEN

CELLS = ("tanh", "gru", "lstm")
CELL_FUNCTIONS = {"tanh": torch.rnn_tanh_cell, "gru": torch.gru_cell, "lstm": torch.lstm_cell}
# Number of weight blocks per cell: one for tanh, three gates for GRU, four for LSTM.
GATE_BLOCKS = {"tanh": 1, "gru": 3, "lstm": 4}
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


def check_head(head: str) -> str:
    head = head.lower()
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return head


def head_size_for(head: str, hidden: int, head_size: int | None = None) -> int:
    """The head's own size: as given, else NADE_UNITS_PER_HIDDEN x hidden for a NADE; 0 for a
    head without hidden units of its own."""
    if check_head(head) != "nade":
        return 0
    return head_size if head_size is not None else max(1, round(NADE_UNITS_PER_HIDDEN * hidden))


def count_parameters(cell: str, hidden: int, layers: int = 1, n_keys: int = N_KEYS,
                     head: str = DEFAULT_HEAD, head_size: int | None = None, onsets: bool = False) -> int:
    """Parameters of NextStepModel, computed without building it (torch keeps two bias vectors)."""
    blocks = GATE_BLOCKS[check_cell(cell)]
    total = 0
    for layer in range(layers):
        inputs = units_per_frame(n_keys, onsets) if layer == 0 else hidden
        total += blocks * hidden * (inputs + hidden + 2)
    return total + HEADS[check_head(head)].count_parameters(hidden, n_keys,
                                                            head_size_for(head, hidden, head_size), onsets)


def hidden_for_params(cell: str, budget: int, layers: int = 1, n_keys: int = N_KEYS,
                      head: str = DEFAULT_HEAD, head_size: int | None = None, onsets: bool = False) -> int:
    """The hidden size whose model has the parameter count closest to `budget` (at least 1).

    With a NADE head and no head_size, the head grows with the hidden size (head_size_for), so
    cell and head are sized together; with a head_size, only the hidden size is solved for.
    """
    if budget <= 0:
        raise UserError("--params must be a positive number of parameters")

    def gap(hidden: int) -> int:
        return count_parameters(cell, hidden, layers, n_keys, head, head_size, onsets) - budget

    # The count grows with the hidden size: find the first size over budget by doubling and
    # halving (a budget from a file may be huge), then take the closer of it and the one below.
    over = 1
    while gap(over) <= 0:
        over *= 2
    low = over // 2
    while low + 1 < over:
        middle = (low + over) // 2
        low, over = (middle, over) if gap(middle) <= 0 else (low, middle)
    if over == 1:
        return 1
    return over - 1 if abs(gap(over - 1)) <= abs(gap(over)) else over


def shift_right(rolls: torch.Tensor) -> torch.Tensor:
    """Inputs for next-step prediction: an all-zero frame, then every frame but the last.

    Predicting frame 0 from silence means every frame of a piece is scored, so NLL per frame
    counts all frames of a split (Boulanger-Lewandowski et al. 2012's convention).
    """
    return torch.cat([torch.zeros_like(rolls[:, :1]), rolls[:, :-1]], dim=1)


class NextStepModel(nn.Module):
    """A recurrent core (nn.RNN / nn.GRU / nn.LSTM) and an output head over the keys of a frame.

    Stages use only its public methods: nll and score (training and evaluation), begin, step and
    drawer (sampling), config and n_parameters. The head is one class of heads.py, so a second
    output distribution changes nothing here but the name in the config. With onsets, a frame is
    `width` = 2 x 88 values, the sounding keys and then the struck keys (in and out).
    """

    def __init__(self, cell: str, hidden: int, layers: int = 1, dropout: float = 0.0,
                 n_keys: int = N_KEYS, head: str = DEFAULT_HEAD, head_size: int | None = None,
                 onsets: bool = False):
        super().__init__()
        self.onsets = bool(onsets)
        self.width = units_per_frame(n_keys, self.onsets)  # values in one frame of a roll
        self.cell = check_cell(cell)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.dropout_p = float(dropout)
        self.n_keys = int(n_keys)
        self.head_name = check_head(head)
        core = {"tanh": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[self.cell]
        extra = {"nonlinearity": "tanh"} if self.cell == "tanh" else {}
        self.core = core(self.width, hidden, num_layers=layers, batch_first=True,
                         dropout=dropout if layers > 1 else 0.0, **extra)
        # The fused layers only drop out between layers; with one layer, dropout acts on the
        # hidden state before the output head, which is where a small model overfits.
        self.drop = nn.Dropout(dropout)
        self.head_size = head_size_for(self.head_name, self.hidden, head_size)
        self.head = HEADS[self.head_name](hidden, n_keys, self.head_size, self.onsets)

    def config(self) -> dict:
        config = {"cell": self.cell, "hidden": self.hidden, "layers": self.layers,
                  "dropout": self.dropout_p, "n_keys": self.n_keys, "head": self.head_name,
                  "head_size": self.head_size}
        return {**config, "onsets": True} if self.onsets else config

    def features(self, inputs: torch.Tensor, state=None):
        """inputs: (batch, time, keys) previous frames -> (what the head reads, core state)."""
        outputs, state = self.core(inputs, state)
        return self.drop(outputs), state

    def forward(self, inputs: torch.Tensor, state=None):
        """The head's raw output (the 88 logits, for the Bernoulli head) and the core state."""
        features, state = self.features(inputs, state)
        return self.head(features), state

    def nll(self, inputs: torch.Tensor, targets: torch.Tensor, state=None):
        """NLL in nats of every target frame, keys summed: ((batch, time), state).

        inputs are the frames before the targets (shift_right(targets) for whole pieces); the
        state carries a piece over from one time chunk to the next. Padding is the caller's to
        mask: each frame's NLL depends only on its own and earlier frames.
        """
        features, state = self.features(inputs, state)
        return self.head.nll(features, targets, inputs), state

    def score(self, inputs: torch.Tensor, targets: torch.Tensor, state=None):
        """(nll (batch, time), predicted frames bool (batch, time, keys), state) in one pass."""
        features, state = self.features(inputs, state)
        nll, predicted = self.head.nll_and_prediction(features, targets, inputs)
        return nll, predicted, state

    def work_per_frame(self) -> int:
        """Floats the head's likelihood holds per frame; evaluation sizes its time chunks by it."""
        return self.head.work_per_frame()

    def init_output_bias(self, key_frequency: torch.Tensor) -> None:
        """Start the head at each unit's training frequency (see the head's init_from_frequency;
        with onsets, the 88 keys' and then each key's share of held frames it is struck again)."""
        self.head.init_from_frequency(key_frequency)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- sampling, one frame at a time with the state carried

    def begin(self, prefix: torch.Tensor):
        """Run (n, T, keys) frames through the core at once (the fused layer, cuDNN on a GPU).

        Returns the features that predict the frame after the prefix and the state as one entry
        per layer, the form step() carries.
        """
        features, state = self.features(prefix)
        if self.cell == "lstm":
            hidden, cell = state
            state = [(hidden[layer], cell[layer]) for layer in range(self.layers)]
        else:
            state = [state[layer] for layer in range(self.layers)]
        return features[:, -1], state

    def step(self, frame: torch.Tensor, state: list):
        """One time step: frame (n, keys) in -> (features predicting the next frame, state).

        torch's cell functions (torch.gru_cell, ...) on the fused layer's own weights compute
        exactly one step of the fused layer (tests check it against a full forward pass), without
        the module's per-call bookkeeping, which dominates a step of a small model. Dropout
        between layers is off in eval mode, so the layers simply chain.
        """
        function = CELL_FUNCTIONS[self.cell]
        layer_input, new_state = frame, []
        for layer, layer_state in enumerate(state):
            layer_state = function(layer_input, layer_state, *self._layer_weights(layer))
            new_state.append(layer_state)
            layer_input = layer_state[0] if self.cell == "lstm" else layer_state  # LSTM: (h, c)
        return layer_input, new_state

    def _layer_weights(self, layer: int):
        core = self.core
        return (getattr(core, f"weight_ih_l{layer}"), getattr(core, f"weight_hh_l{layer}"),
                getattr(core, f"bias_ih_l{layer}", None), getattr(core, f"bias_hh_l{layer}", None))

    def drawer(self, temperature: float, generator: torch.Generator, n_pieces: int):
        """The head's frame drawer: (features, out frame, max_polyphony, previous frame) ->
        probabilities; it writes the frame in the roll's form (width values)."""
        return self.head.drawer(temperature, generator, n_pieces)


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
                         config.get("dropout", 0.0), config.get("n_keys", N_KEYS),
                         # checkpoints from before heads existed hold the Bernoulli head
                         config.get("head", "bernoulli"), config.get("head_size"), config.get("onsets", False))


def load_model(path: str | Path, map_location="cpu") -> tuple[NextStepModel, dict]:
    """The model stored in a checkpoint, in eval mode, and the whole checkpoint dict."""
    from seqgate.training.runs import load_checkpoint_file

    checkpoint = load_checkpoint_file(path, map_location)
    config = checked_weights(checkpoint, path)
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    return model, checkpoint


def checked_weights(checkpoint: dict, path) -> dict:
    """The checkpoint's model config, once it is valid and the file's tensors are exactly the
    weights it implies; UserError otherwise. Call before building the model."""
    config = checked_model_config(checkpoint["model_config"], path)
    # The config's shapes, built on the meta device (no memory), must be the tensors in the
    # file: then the model built below is no bigger than the file itself.
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in build_model(config).state_dict().items()}
    stored = checkpoint["model"]
    for name in sorted(set(expected) | set(stored)):
        tensor = stored.get(name)
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.float32 \
                or tuple(tensor.shape) != expected.get(name):
            found = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise UserError(f"{path}: weights do not fit the stored model config ({name}: "
                            f"{found} in the file, {expected.get(name, 'nothing')} expected)")
    return config


# The largest sizes a checkpoint's config may name: far above any model seqgate trains, low
# enough that no number in a file can ask for an absurd model before its tensors are compared.
MAX_HIDDEN, MAX_LAYERS = 1 << 16, 64


def checked_model_config(config: dict, path) -> dict:
    """The model config stored in a checkpoint, once its types and ranges are those seqgate
    writes; UserError naming the field otherwise."""
    def whole(value, low, high) -> bool:
        return is_number(value, whole=True) and low <= value <= high

    checks = {
        "cell": isinstance(config.get("cell"), str) and config.get("cell") in CELLS,
        "hidden": whole(config.get("hidden"), 1, MAX_HIDDEN),
        "layers": whole(config.get("layers", 1), 1, MAX_LAYERS),
        "n_keys": config.get("n_keys", N_KEYS) == N_KEYS and whole(config.get("n_keys", N_KEYS), 1, N_KEYS),
        "dropout": is_number(config.get("dropout", 0.0)) and 0.0 <= config.get("dropout", 0.0) < 1.0,
        "head": isinstance(config.get("head", "bernoulli"), str) and config.get("head", "bernoulli") in HEADS,
        "head_size": config.get("head_size") is None or whole(config.get("head_size"), 0, MAX_HIDDEN),
        "onsets": isinstance(config.get("onsets", False), bool),
    }
    wrong = [field for field, ok in checks.items() if not ok]
    if wrong:
        raise UserError(f"{path}: the stored model config has an invalid {wrong[0]} ({config.get(wrong[0])!r})")
    return config
