"""The recurrent cells seqgate trains: one row of facts per cell, from which the model, the sizing
and the help text are built. Adding a cell is adding a row here (if torch has a fused layer and a
one-step function for it) and its equations in reference.py.

Nothing here imports torch, so the command line can name and check cells without loading it; the
model turns the names into torch objects with getattr(nn, cell.layer) and getattr(torch, cell.step),
as pytorch/examples' word_language_model does.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqgate.errors import UserError


@dataclass(frozen=True)
class Cell:
    name: str
    layer: str  # torch.nn's fused layer: nn.RNN / nn.GRU / nn.LSTM (cuDNN on a GPU)
    step: str  # torch's one-step function on that layer's own weights, used for sampling
    gates: tuple[str, ...]  # the weight blocks stacked along w_ih / w_hh, in torch's order
    paired_state: bool  # the state is (h, c), not h alone
    layer_options: tuple[tuple[str, object], ...]  # further keyword arguments of the layer
    summary: str  # for --help
    # A function of seqgate.model.fast_rnn that runs the layer faster on the CPU with the same
    # numbers (it falls back to the layer itself where it does not apply), or None.
    cpu_forward: str | None = None
    # That function runs compiled loops (seqgate.model.kernels) where they load; train builds
    # them before the first epoch so that the build is announced and timed apart from training.
    cpu_kernel: bool = False

    @property
    def blocks(self) -> int:
        return len(self.gates)


CELLS = {cell.name: cell for cell in (
    Cell("tanh", "RNN", "rnn_tanh_cell", ("h",), False, (("nonlinearity", "tanh"),),
         "the traditional tanh RNN", cpu_forward="tanh_forward", cpu_kernel=True),
    Cell("gru", "GRU", "gru_cell", ("r", "z", "n"), False, (),
         "gated recurrent unit (Cho et al. 2014)", cpu_forward="gru_forward", cpu_kernel=True),
    Cell("lstm", "LSTM", "lstm_cell", ("i", "f", "g", "o"), True, (),
         "long short-term memory, without peepholes"),
)}

CELL_HELP = "; ".join(f"{cell.name}: {cell.summary}" for cell in CELLS.values())


def check_cell(name: str) -> str:
    """The cell's name in lower case; UserError for a cell seqgate does not have."""
    name = str(name).lower()
    if name not in CELLS:
        raise UserError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}")
    return name
