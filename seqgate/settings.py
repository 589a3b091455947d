"""Settings and their defaults, each written once: the command line, train, compare and the demo
all read them from here. Nothing here imports torch, so the command line starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqgate.data.dataset import DEFAULT_DATASET
from seqgate.errors import UserError

DEFAULT_PARAMS = 20_000  # the paper's Table 1 budget
# The output distribution of a frame, one of heads.HEADS: "nade" (RNN-NADE), measured better than
# the paper's independent "bernoulli" keys on JSB and Nottingham at 20k parameters.
DEFAULT_HEAD = "nade"
# Under a parameter budget a NADE head gets this many hidden units per recurrent unit: the split of
# a 32-unit GRU with a 24-unit NADE, which reached 5.59 nats on JSB at 19,632 parameters.
NADE_UNITS_PER_HIDDEN = 0.75


@dataclass(frozen=True)
class Recipe:
    optimizer: str  # "adam" or "rmsprop"
    lr: float
    weight_noise: float  # std of the Gaussian weight noise drawn for every update
    summary: str  # one line for --help


RECIPES = {
    "default": Recipe("adam", 3e-3, 0.06, "Adam 3e-3, weight noise 0.06, lr halved on a plateau"),
    "paper": Recipe("rmsprop", 1e-3, 0.075, "Chung et al. 2014: RMSProp, weight noise 0.075"),
}


@dataclass
class TrainConfig:
    """Every training setting and its default; the command line takes its defaults from here."""

    cell: str = "gru"
    data: str = str(DEFAULT_DATASET)
    hidden: int | None = None
    params: int | None = None  # with hidden unset: DEFAULT_PARAMS
    head: str = DEFAULT_HEAD
    nade_hidden: int | None = None  # NADE hidden units; None: NADE_UNITS_PER_HIDDEN x hidden
    layers: int = 1
    dropout: float = 0.0
    recipe: str = "default"
    lr: float | None = None  # None: the recipe's own
    batch_size: int = 16
    window: int = 128
    clip: float = 1.0
    weight_decay: float = 0.0
    weight_noise: float | None = None  # None: the recipe's own
    augment_transpose: int = 0
    max_epochs: int = 300
    max_minutes: float | None = None
    patience: int = 20  # epochs without a better validation NLL before stopping
    lr_patience: int = 5  # epochs without improvement before the learning rate is halved
    seed: int = 0
    device: str = "auto"

    def resolved_hidden(self, onsets: bool = False) -> int:
        return self.resolved_sizes(onsets)[0]

    def resolved_sizes(self, onsets: bool = False) -> tuple[int, int]:
        """(recurrent hidden units, head size): as given, or solved for the parameter budget
        (onsets: for onset-aware data, whose frames are twice as wide in and out)."""
        from seqgate.model.network import head_size_for, hidden_for_params

        if self.nade_hidden is not None and self.nade_hidden <= 0:
            raise UserError("--nade-hidden must be positive")
        if self.hidden is not None:
            if self.hidden <= 0:
                raise UserError("--hidden must be positive")
            return self.hidden, head_size_for(self.head, self.hidden, self.nade_hidden)
        hidden = hidden_for_params(self.cell, self.params or DEFAULT_PARAMS, self.layers,
                                   head=self.head, head_size=self.nade_hidden, onsets=onsets)
        return hidden, head_size_for(self.head, hidden, self.nade_hidden)

    def recipe_lr(self) -> float:
        return self.lr if self.lr is not None else RECIPES[self.recipe].lr

    def recipe_weight_noise(self) -> float:
        return self.weight_noise if self.weight_noise is not None else RECIPES[self.recipe].weight_noise

    def validate(self) -> None:
        from seqgate.model.network import check_cell, check_head

        self.cell = check_cell(self.cell)
        self.head = check_head(self.head)
        if self.recipe not in RECIPES:
            raise UserError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        for name in ("batch_size", "window", "max_epochs", "layers"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive")
        if not 0 <= self.dropout < 1:
            raise UserError("--dropout must be in [0, 1)")
        if self.augment_transpose < 0:
            raise UserError("--augment-transpose must be >= 0")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserError(f"unknown device {self.device!r}; choose auto, cpu or cuda")


# `seqgate sample`: the length of a piece when none is given, and how a bar is counted.
QUARTERS_PER_BAR = 4  # bars are counted in 4/4: the rolls keep no metre
SAMPLE_BARS = 16
SAMPLE_TEMPERATURE = 1.0
SAMPLE_PROGRAM = 0  # General MIDI acoustic grand piano
SAMPLE_VELOCITY = 80
