"""The settings records of the commands (TrainConfig, SampleConfig, CompareConfig, PrepareConfig)
and their defaults: the command line takes its defaults from them, and each record's validate()
is the one check of its values. Nothing here imports torch at import time, so the command line
starts fast.
"""

from __future__ import annotations

import math
import os

from dataclasses import dataclass, field, fields, replace

from seqgate.data.dataset import DEFAULT_DATASET
from seqgate.data.keys import parse_key
from seqgate.data.roll import DEFAULT_FRAMES_PER_QUARTER, MAX_FRAMES_PER_QUARTER, is_grid
from seqgate.errors import UserError, is_finite_number, is_number

DEFAULT_PARAMS = 20_000  # the paper's Table 1 budget
# A run given neither --params nor --hidden on a corpus that is not one of the benchmarks is sized
# by its training frames (sizing.params_for_corpus), up to the largest size measured to gain within
# the default time budget (the README's table); the benchmarks keep the paper's size.
PARAMS_PER_TRAINING_FRAME = 0.2
MOST_PARAMS_FOR_A_CORPUS = 300_000
# The output distribution of a frame, one of heads.HEADS: "nade" (RNN-NADE) rather than the
# paper's independent "bernoulli" keys (the README's results compare the two).
DEFAULT_HEAD = "nade"


@dataclass(frozen=True)
class PrepareConfig:
    """Every setting of `seqgate prepare` that shapes the dataset, and its default; validate()
    checks them all, once. The parser workers receive it as it is."""

    frames_per_quarter: int = DEFAULT_FRAMES_PER_QUARTER  # the grid of MIDI input
    drums: bool = False  # keep drum tracks as pitches
    transpose_to_c: bool = False  # each piece to C major / C minor
    onsets: bool = False  # also keep which keys are struck at each frame (MIDI input)
    split_fractions: tuple = (0.8, 0.1, 0.1)  # train, valid, test, for folders without split names
    workers: int | None = None  # parser processes; None: all cores
    file_timeout: float = 60.0  # seconds one MIDI file may take before its worker is killed

    def validate(self) -> "PrepareConfig":
        if not is_grid(self.frames_per_quarter):
            raise UserError(f"frames per quarter must be 1..{MAX_FRAMES_PER_QUARTER}, not {self.frames_per_quarter}")
        fractions = self.split_fractions
        if len(fractions) != 3 or not all(is_finite_number(f) and f >= 0 for f in fractions):
            raise UserError(f"split fractions must be three non-negative numbers, got {tuple(fractions)}")
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise UserError(f"split fractions must sum to 1, got {sum(fractions):g}")
        if self.workers is not None and not (is_number(self.workers, whole=True) and self.workers >= 1):
            raise UserError(f"--workers must be at least 1, got {self.workers}")
        return replace(self, split_fractions=tuple(float(f) for f in fractions))

    @staticmethod
    def parse_split(spec: str) -> tuple:
        """"0.8,0.1,0.1" -> (0.8, 0.1, 0.1); validate() checks the numbers."""
        parts = [part.strip() for part in str(spec).split(",")]
        if len(parts) != 3:
            raise UserError(f"--split needs three fractions train,valid,test, got {spec!r}")
        try:
            return tuple(float(part) for part in parts)
        except ValueError:
            raise UserError(f"--split fractions must be numbers, got {spec!r}") from None


@dataclass(frozen=True)
class Recipe:
    optimizer: str  # "adam" or "rmsprop"
    lr: float
    weight_noise: float  # std of the Gaussian weight noise drawn for every update
    summary: str  # one line for --help
    dropout: float = 0.0  # on the recurrent output before the head (and between layers)
    # With a scale, the dropout grows with how easily the model can overfit its corpus:
    # scale x sqrt(parameters / training frames), at most `dropout` (see dropout_for).
    dropout_scale: float = 0.0

    def dropout_for(self, parameters: int, training_frames: int) -> float:
        """This recipe's dropout for a model of `parameters` on `training_frames` frames."""
        if not self.dropout_scale:
            return self.dropout
        return round(min(self.dropout, self.dropout_scale * math.sqrt(parameters / max(training_frames, 1))), 3)


RECIPES = {
    "default": Recipe("adam", 3e-3, 0.06, "Adam 3e-3, weight noise 0.06, lr halved on a plateau"),
    "paper": Recipe("rmsprop", 1e-3, 0.075, "Chung et al. 2014: RMSProp, weight noise 0.075"),
    # Chosen on the JSB and Nottingham validation splits (README, "Towards the published
    # likelihoods"): 0.3 at 20k parameters on JSB's 13,807 training frames, 0.08 on Nottingham's
    # 176,561.
    "dropout": Recipe("adam", 3e-3, 0.1, "the default with weight noise 0.1 and dropout before the head "
                      "of 0.25 x sqrt(parameters / training frames), at most 0.5", dropout=0.5, dropout_scale=0.25),
}


@dataclass
class TrainConfig:
    """Every training setting and its default; the command line takes its defaults from here."""

    cell: str = "gru"
    data: str = str(DEFAULT_DATASET)
    hidden: int | None = None
    params: int | None = None  # with hidden unset, None: sizing.params_for_corpus (train decides)
    head: str = DEFAULT_HEAD
    nade_hidden: int | None = None  # NADE hidden units; None: sizing.NADE_UNITS_PER_HIDDEN x hidden
    layers: int = 1
    dropout: float | None = None  # None: the recipe's own
    recipe: str = "default"
    lr: float | None = None  # None: the recipe's own
    batch_size: int = 16
    window: int = 128
    clip: float = 1.0
    weight_decay: float = 0.0
    weight_noise: float | None = None  # None: the recipe's own
    augment_transpose: int = 0
    max_epochs: int = 1000
    # The time budget of a run, None or 0 for none. On the benchmark corpora early stopping ends
    # a 20k-parameter run first; on a corpus of 500,000 frames an epoch takes seconds, early
    # stopping would take hours, and ten minutes give a model worth sampling (the README's
    # quality-per-minute table).
    max_minutes: float | None = 10.0
    patience: int = 20  # epochs without a better validation NLL before stopping
    lr_patience: int = 5  # epochs without improvement before the learning rate is halved
    seed: int = 0
    device: str = "auto"

    def resolved_hidden(self, onsets: bool = False) -> int:
        return self.resolved_sizes(onsets)[0]

    def resolved_sizes(self, onsets: bool = False) -> tuple[int, int]:
        """(recurrent hidden units, head size): as given, or solved for the parameter budget
        (onsets: for onset-aware data, whose frames are twice as wide in and out)."""
        from seqgate.model.sizing import head_size_for, hidden_for_params

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

    def recipe_dropout(self, parameters: int, training_frames: int) -> float:
        if self.dropout is not None:
            return self.dropout
        return RECIPES[self.recipe].dropout_for(parameters, training_frames)

    def validate(self) -> None:
        from seqgate.model.cells import check_cell
        from seqgate.model.heads import check_head

        self.cell = check_cell(self.cell)
        self.head = check_head(self.head)
        if self.recipe not in RECIPES:
            raise UserError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        for name in ("batch_size", "window", "max_epochs", "layers"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive")
        if self.dropout is not None and not (is_number(self.dropout) and 0 <= self.dropout < 1):
            raise UserError("--dropout must be in [0, 1)")
        if self.max_minutes is not None and not self.max_minutes >= 0:
            raise UserError("--max-minutes must be >= 0 (0: no time limit)")
        if self.max_minutes == 0:
            self.max_minutes = None
        if self.augment_transpose < 0:
            raise UserError("--augment-transpose must be >= 0")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserError(f"unknown device {self.device!r}; choose auto, cpu or cuda")


# TrainConfig fields that compare sets itself, the same way for every cell (the rest may be given
# as train_options).
COMPARE_SETS = ("cell", "head", "data", "seed", "params", "hidden", "recipe", "device", "max_epochs",
                "max_minutes")


@dataclass(frozen=True)
class CompareConfig:
    """Every setting of `seqgate compare` and its default; validate() checks them all, once."""

    cells: tuple = ()  # of cells.CELLS
    heads: tuple = (DEFAULT_HEAD,)  # several: one row per cell and head
    data: str = str(DEFAULT_DATASET)
    output: str | None = None  # None: runs/compare-<cells>[-<heads>]
    params: int = DEFAULT_PARAMS  # the budget every cell's hidden size is solved for
    seeds: int = 1  # seeds 0..seeds-1 per cell
    max_epochs: int = TrainConfig.max_epochs  # per run
    max_minutes: float | None = TrainConfig.max_minutes  # per run
    jobs: int = 1  # runs trained at once, each in its own process
    recipe: str = TrainConfig.recipe
    device: str = TrainConfig.device
    paper: bool = False  # Chung et al. 2014's numbers beside these (benchmark corpora only)
    train_options: dict = field(default_factory=dict)  # further TrainConfig fields, for every cell

    def validate(self) -> "CompareConfig":
        """The settings with cells and heads in their canonical names; UserError for any bad one."""
        from seqgate.model.cells import CELLS, check_cell
        from seqgate.model.heads import check_head

        heads = tuple(check_head(head) for head in self.heads) or (DEFAULT_HEAD,)
        if len(set(heads)) < len(heads):
            raise UserError("a head is named twice")
        cells = tuple(check_cell(cell) for cell in self.cells)
        if not cells:
            raise UserError(f"name at least one cell to compare: {', '.join(CELLS)}")
        repeated = sorted({cell for cell in cells if cells.count(cell) > 1})
        if repeated:
            raise UserError(f"cell {repeated[0]} is named twice; use --seeds for repeated runs")
        for name in ("seeds", "jobs"):
            if not is_number(getattr(self, name), whole=True) or getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")
        given = set(self.train_options)
        unknown = sorted((given - {f.name for f in fields(TrainConfig)}) | (given & set(COMPARE_SETS)))
        if unknown:
            raise ValueError(f"not TrainConfig options (or set by compare itself): {', '.join(unknown)}")
        return replace(self, cells=cells, heads=heads, data=str(self.data),
                       output=None if self.output is None else str(self.output))

    def train_configs(self, data_path: str) -> list[TrainConfig]:
        """One TrainConfig per cell, head and seed, each validated, with the recipe's learning
        rate and weight noise written out (train writes out its dropout): a run trained before a recipe's defaults changed must
        not look equal to one trained after."""
        configs = []
        for cell in self.cells:
            for head in self.heads:
                for seed in range(self.seeds):
                    config = TrainConfig(cell=cell, head=head, data=data_path, params=self.params,
                                         recipe=self.recipe, device=self.device, seed=seed,
                                         max_epochs=self.max_epochs, max_minutes=self.max_minutes,
                                         **self.train_options)
                    config.validate()
                    config.lr, config.weight_noise = config.recipe_lr(), config.recipe_weight_noise()
                    configs.append(config)
        return configs


# `seqgate evaluate`: which split of which checkpoint, where, when not told.
EVALUATE_SPLIT, EVALUATE_CHECKPOINT, EVALUATE_DEVICE = "test", "best.pt", "cpu"

# `seqgate sample`: how a bar is counted.
QUARTERS_PER_BAR = 4  # bars are counted in 4/4: the rolls keep no metre
AUTO_KEY = "auto"  # --key auto: the key estimated from the primer


@dataclass(frozen=True)
class SampleConfig:
    """Every setting of `seqgate sample` and its default; validate() checks them all, once."""

    n: int = 1  # pieces
    frames: int | None = None  # new frames per piece; wins over bars
    bars: int | None = None  # new 4/4 bars per piece; neither given: default_bars
    seed: int = 0
    temperature: float = 1.0  # below 1: safer; above 1: wilder
    primer: str | None = None  # a MIDI file whose roll every piece continues
    primer_frames: int | None = None  # only the primer's first N frames
    primer_in_output: bool = True
    qpm: float | None = None  # None: the training corpus's median tempo, else 120
    program: int = 0  # General MIDI acoustic grand piano
    velocity: int = 80
    max_polyphony: int | None = None
    png: bool = False  # a piano-roll picture beside each file
    key: str | None = None  # a key name ("D minor", "Bb") or AUTO_KEY; None: the model's own draws
    key_strength: float | None = None  # logit taken off notes outside the key; None: the default

    default_bars = 16
    # Measured on a corpus of chorales in all twelve keys (README): 1 brings 512-frame samples'
    # share of notes in one scale to the corpus's own, leaving notes per frame and register as
    # they were; 2 or more leaves fewer chromatic notes than the corpus has.
    default_key_strength = 1.0

    def validate(self) -> "SampleConfig":
        def at_least_one(value) -> bool:
            return value is None or is_number(value, whole=True) and value >= 1

        for name, flag in (("n", "-n"), ("frames", "--frames"), ("bars", "--bars"),
                           ("primer_frames", "--primer-frames"), ("max_polyphony", "--max-polyphony")):
            if not at_least_one(getattr(self, name)) or (name == "n" and self.n is None):
                raise UserError(f"{flag} must be at least 1, got {getattr(self, name)}")
        if not is_finite_number(self.temperature) or not self.temperature > 0:
            raise UserError(f"--temperature must be a positive number, got {self.temperature:g}")
        if not (is_number(self.program, whole=True) and 0 <= self.program <= 127):
            raise UserError(f"--program must be a General MIDI program 0..127, got {self.program}")
        if not (is_number(self.velocity, whole=True) and 1 <= self.velocity <= 127):
            raise UserError(f"--velocity must be 1..127, got {self.velocity}")
        if self.qpm is not None and not (is_finite_number(self.qpm) and self.qpm > 0):
            raise UserError(f"--qpm must be a positive tempo, got {self.qpm}")
        if self.key is not None:
            if self.key_from_primer and self.primer is None:
                raise UserError(f'--key {AUTO_KEY} takes the key of the --primer; give a primer, or name '
                                f'the key (for example --key "D minor")')
            if not self.key_from_primer and parse_key(self.key) is None:
                raise UserError(f"--key {self.key!r} names no key: give a note and a mode, for example "
                                f"C, F# minor, Bb major or Ebm, or {AUTO_KEY} for the primer's key")
        if self.key_strength is not None:
            if self.key is None:
                raise UserError("--key-strength applies only with --key")
            if not is_finite_number(self.key_strength) or self.key_strength < 0:
                raise UserError(f"--key-strength must be a number 0 or above, got {self.key_strength}")
        return self

    @property
    def key_from_primer(self) -> bool:
        return self.key is not None and self.key.strip().lower() == AUTO_KEY

    @property
    def strength_of_key(self) -> float:
        """The logit taken off notes outside --key: --key-strength, else the default."""
        return float(self.default_key_strength if self.key_strength is None else self.key_strength)

    def frames_for(self, frames_per_beat: int) -> int:
        """New frames per piece on a grid of `frames_per_beat` frames a quarter note."""
        if self.frames is not None:
            return int(self.frames)
        return int(self.bars if self.bars is not None else self.default_bars) * QUARTERS_PER_BAR * frames_per_beat


def available_cores() -> int:
    """The cores this process may run on (its affinity, where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
