"""The next-step predictor: frame t-1 of a piano roll in, the distribution of frame t out.

The recurrent core is torch's fused layer for the cell (cells.CELLS: nn.RNN / nn.GRU / nn.LSTM),
which runs on cuDNN on a GPU; reference.py writes the same equations out by hand for the tests. An
output head (heads.py) turns the hidden state into a distribution over the keys of the next frame:
the NADE head (RNN-NADE, Boulanger-Lewandowski et al. 2012) or the Bernoulli head, whose keys are
independent given the past (the model of Chung et al. 2014).

The model owns its likelihood (nll, score) and its sampling step (begin, step, drawer): train,
evaluate and sample call these and never the core or the head. What a model is, as a checkpoint
stores it, is a ModelConfig; sizing.py says how many parameters one has.
"""

from __future__ import annotations

import contextlib
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Iterator

import torch
from torch import nn

from seqgate.data.roll import N_KEYS
from seqgate.errors import UserError, is_number
from seqgate.model import fast_rnn
from seqgate.model.cells import CELLS, check_cell
from seqgate.model.heads import HEADS, check_head, units_per_frame
from seqgate.model.sizing import head_size_for

# Below this many multiply-adds per time step, extra CPU threads cost more in synchronisation
# than they save (see the commit that set it for the measurements).
ONE_THREAD_WORK_LIMIT = 25_000_000
# The largest sizes a stored config may name: far above any model seqgate trains, low enough that
# no number in a file can ask for an absurd model before its tensors are compared.
MAX_HIDDEN, MAX_LAYERS = 1 << 16, 64
# Checkpoints from before heads existed hold the Bernoulli head and name none.
HEAD_OF_OLD_CHECKPOINTS = "bernoulli"


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a model's shape: what a checkpoint stores as "model_config"."""

    cell: str
    hidden: int
    head: str
    head_size: int = 0  # the head's own hidden units (a NADE's); 0 for a head without any
    layers: int = 1
    dropout: float = 0.0
    n_keys: int = N_KEYS
    onsets: bool = False  # frames hold the struck keys after the sounding ones

    def to_dict(self) -> dict:
        """The stored form; "onsets" only when set, as checkpoints have always had it."""
        stored = asdict(self)
        if not self.onsets:
            del stored["onsets"]
        return stored

    @classmethod
    def from_stored(cls, stored, path) -> "ModelConfig":
        """A checkpoint's "model_config", once its types and ranges are those seqgate writes
        (UserError naming the field otherwise); an old checkpoint's missing fields take the values
        it was trained with."""
        if not isinstance(stored, dict):
            raise UserError(f"{path} is not a seqgate checkpoint")
        defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        # head_size None: sized by the rule the run was trained under (below)
        config = {**defaults, "head": HEAD_OF_OLD_CHECKPOINTS, "head_size": None, **stored}

        def whole(value, low, high) -> bool:
            return is_number(value, whole=True) and low <= value <= high

        checks = {
            "cell": isinstance(config.get("cell"), str) and config.get("cell") in CELLS,
            "hidden": whole(config.get("hidden"), 1, MAX_HIDDEN),
            "layers": whole(config["layers"], 1, MAX_LAYERS),
            "n_keys": config["n_keys"] == N_KEYS and whole(config["n_keys"], 1, N_KEYS),
            "dropout": is_number(config["dropout"]) and 0.0 <= config["dropout"] < 1.0,
            "head": isinstance(config["head"], str) and config["head"] in HEADS,
            # a NADE needs at least one hidden unit; None: sized by the rule it was trained under
            "head_size": config["head_size"] is None or whole(config["head_size"],
                                                              1 if config["head"] == "nade" else 0, MAX_HIDDEN),
            "onsets": isinstance(config["onsets"], bool),
        }
        wrong = [name for name, ok in checks.items() if not ok]
        if wrong:
            raise UserError(f"{path}: the stored model config has an invalid {wrong[0]} "
                            f"({config.get(wrong[0])!r})")
        config = {name: config[name] for name in cls.__dataclass_fields__ if name in config}
        config["head_size"] = head_size_for(config["head"], config["hidden"], config["head_size"])
        return cls(**config)


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
                 n_keys: int = N_KEYS, *, head: str, head_size: int | None = None,
                 onsets: bool = False):
        super().__init__()
        self.onsets = bool(onsets)
        self.width = units_per_frame(n_keys, self.onsets)  # values in one frame of a roll
        self.cell = check_cell(cell)
        self._cell = CELLS[self.cell]
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.dropout_p = float(dropout)
        self.n_keys = int(n_keys)
        self.head_name = check_head(head)
        self.core = getattr(nn, self._cell.layer)(self.width, hidden, num_layers=layers, batch_first=True,
                                                  dropout=dropout if layers > 1 else 0.0,
                                                  **dict(self._cell.layer_options))
        self._step = getattr(torch, self._cell.step)
        self._cpu_forward = getattr(fast_rnn, self._cell.cpu_forward) if self._cell.cpu_forward else None
        # The fused layers only drop out between layers; with one layer, dropout acts on the
        # hidden state before the output head, which is where a small model overfits.
        self.drop = nn.Dropout(dropout)
        self.head_size = head_size_for(self.head_name, self.hidden, head_size)
        self.head = HEADS[self.head_name](hidden, n_keys, self.head_size, self.onsets)

    @classmethod
    def from_config(cls, config: ModelConfig) -> "NextStepModel":
        return cls(config.cell, config.hidden, config.layers, config.dropout, config.n_keys,
                   head=config.head, head_size=config.head_size, onsets=config.onsets)

    def config(self) -> ModelConfig:
        return ModelConfig(cell=self.cell, hidden=self.hidden, head=self.head_name, head_size=self.head_size,
                           layers=self.layers, dropout=self.dropout_p, n_keys=self.n_keys, onsets=self.onsets)

    def features(self, inputs: torch.Tensor, state=None):
        """inputs: (batch, time, keys) previous frames -> (what the head reads, core state)."""
        if self._cpu_forward is not None:  # nn.GRU's numbers, faster on the CPU; the layer elsewhere
            outputs, state = self._cpu_forward(self.core, inputs, state)
        else:
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
        if self._cell.paired_state:
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
        layer_input, new_state = frame, []
        for layer, layer_state in enumerate(state):
            layer_state = self._step(layer_input, layer_state, *self._layer_weights(layer))
            new_state.append(layer_state)
            layer_input = layer_state[0] if self._cell.paired_state else layer_state  # (h, c): h
        return layer_input, new_state

    def _layer_weights(self, layer: int):
        core = self.core
        return (getattr(core, f"weight_ih_l{layer}"), getattr(core, f"weight_hh_l{layer}"),
                getattr(core, f"bias_ih_l{layer}", None), getattr(core, f"bias_hh_l{layer}", None))

    def drawer(self, temperature: float, generator: torch.Generator, n_pieces: int,
               logit_bias: torch.Tensor | None = None):
        """The head's frame drawer: (features, out frame, max_polyphony, previous frame) ->
        probabilities; it writes the frame in the roll's form (width values). logit_bias: None or
        a constant added to each of the head's units' logits (see heads.py)."""
        return self.head.drawer(temperature, generator, n_pieces, logit_bias)


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


def check_weights(config: ModelConfig, weights, path) -> None:
    """UserError unless `weights` are exactly the float32 tensors the config implies; the shapes
    come from a model built on the meta device (no memory), so a model built from the config is
    never bigger than the file that named it."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in NextStepModel.from_config(config).state_dict().items()}
    if not isinstance(weights, dict):
        raise UserError(f"{path} is not a seqgate checkpoint")
    for name in sorted(set(expected) | set(weights), key=str):
        tensor = weights.get(name)
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.float32 \
                or tuple(tensor.shape) != expected.get(name):
            found = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise UserError(f"{path}: weights do not fit the stored model config ({name}: "
                            f"{found} in the file, {expected.get(name, 'nothing')} expected)")
