"""How big a model is: its parameter count, computed without building it, and the hidden size that
meets a parameter budget, so that cells are compared at equal size as Chung et al. 2014 did
(Table 1).
"""

from __future__ import annotations

from seqgate.data.roll import N_KEYS
from seqgate.errors import UserError
from seqgate.model.cells import CELLS, check_cell
from seqgate.model.heads import HEADS, check_head, units_per_frame
from seqgate.settings import DEFAULT_PARAMS, MOST_PARAMS_FOR_A_CORPUS, PARAMS_PER_TRAINING_FRAME

# Under a parameter budget a NADE head gets this many hidden units per recurrent unit (the split
# of the README's JSB table: a 32-unit GRU with a 24-unit NADE).
NADE_UNITS_PER_HIDDEN = 0.75


def params_for_corpus(training_frames: int, benchmark: bool) -> int:
    """The parameter budget of a run that names none: DEFAULT_PARAMS on a benchmark corpus, else
    PARAMS_PER_TRAINING_FRAME a training frame (in thousands), from DEFAULT_PARAMS up to
    MOST_PARAMS_FOR_A_CORPUS."""
    if benchmark:
        return DEFAULT_PARAMS
    budget = round(PARAMS_PER_TRAINING_FRAME * training_frames, -3)
    return int(min(MOST_PARAMS_FOR_A_CORPUS, max(DEFAULT_PARAMS, budget)))


def head_size_for(head: str, hidden: int, head_size: int | None = None) -> int:
    """The head's own size: as given, else NADE_UNITS_PER_HIDDEN x hidden for a NADE; 0 for a
    head without hidden units of its own."""
    if check_head(head) != "nade":
        return 0
    return head_size if head_size is not None else max(1, round(NADE_UNITS_PER_HIDDEN * hidden))


def count_parameters(cell: str, hidden: int, layers: int = 1, n_keys: int = N_KEYS, *,
                     head: str, head_size: int | None = None, onsets: bool = False) -> int:
    """Parameters of NextStepModel (torch keeps two bias vectors per gate)."""
    blocks = CELLS[check_cell(cell)].blocks
    total = 0
    for layer in range(layers):
        inputs = units_per_frame(n_keys, onsets) if layer == 0 else hidden
        total += blocks * hidden * (inputs + hidden + 2)
    return total + HEADS[check_head(head)].count_parameters(hidden, n_keys,
                                                            head_size_for(head, hidden, head_size), onsets)


def hidden_for_params(cell: str, budget: int, layers: int = 1, n_keys: int = N_KEYS, *,
                      head: str, head_size: int | None = None, onsets: bool = False) -> int:
    """The hidden size whose model has the parameter count closest to `budget` (at least 1).

    With a NADE head and no head_size, the head grows with the hidden size (head_size_for), so
    cell and head are sized together; with a head_size, only the hidden size is solved for.
    """
    if budget <= 0:
        raise UserError("--params must be a positive number of parameters")

    def gap(hidden: int) -> int:
        return count_parameters(cell, hidden, layers, n_keys, head=head, head_size=head_size,
                                onsets=onsets) - budget

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
