"""Settings and their defaults, each written once: the command line, train, compare and the demo
all read them from here. Nothing here imports torch, so the command line starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqgate.dataset import DEFAULT_DATASET
from seqgate.errors import UserError

DEFAULT_PARAMS = 20_000  # the paper's Table 1 budget


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

    def resolved_hidden(self) -> int:
        from seqgate.model import hidden_for_params

        if self.hidden is not None:
            if self.hidden <= 0:
                raise UserError("--hidden must be positive")
            return self.hidden
        return hidden_for_params(self.cell, self.params or DEFAULT_PARAMS, self.layers)

    def recipe_lr(self) -> float:
        return self.lr if self.lr is not None else RECIPES[self.recipe].lr

    def recipe_weight_noise(self) -> float:
        return self.weight_noise if self.weight_noise is not None else RECIPES[self.recipe].weight_noise

    def validate(self) -> None:
        from seqgate.model import check_cell

        self.cell = check_cell(self.cell)
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
