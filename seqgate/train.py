"""`seqgate train`: fit a next-step predictor to the train split, choosing by validation NLL.

Batches: every epoch cuts each training piece into windows of at most `window` frames at a random
phase (so every frame is seen once per epoch and window edges move), groups windows of similar
length, pads them with a mask so padding never touches the loss, and shuffles the batch order.

Recipes:
  default  Adam (lr 3e-3), light weight noise (std 0.06), gradient norm clipped at 1, learning
           rate halved on a validation plateau, early stopping on validation NLL. The output bias
           starts at the training key frequencies. Chosen on JSB and Nottingham validation NLL;
           the README lists what was tried.
  paper    Chung et al. 2014: RMSProp, weight noise (std 0.075) and gradient norm clipped at 1,
           early stopping on validation NLL.

Run folder (DESIGN.md): config.json, metrics.jsonl (one line per epoch), best.pt (best validation
NLL), last.pt (everything needed to resume: model, optimizer, scheduler, RNG states, epoch,
early-stopping state), curves.png. Checkpoints hold plain tensors and JSON-able values only, so
they load with weights_only=True. Ctrl-C or SIGTERM keeps last.pt at the last finished epoch;
`--resume` continues from it and, on CPU, ends with exactly the numbers of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqgate import __version__
from seqgate.errors import UserError
from seqgate.evaluate import evaluate_batches, frame_nll, padded_batches
from seqgate.files import (DEFAULT_DATASET, DEFAULT_RUNS_DIR, atomic_write, record_latest_run,
                           write_json_atomic)
from seqgate.model import NextStepModel, check_cell, few_threads_for_small_work, hidden_for_params

RECIPES = ("default", "paper")
DEFAULT_PARAMS = 20_000  # the paper's Table 1 budget


@dataclass
class TrainConfig:
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
    weight_noise: float | None = None  # None: the recipe's own (paper 0.075, default 0.06)
    augment_transpose: int = 0
    max_epochs: int = 300
    max_minutes: float | None = None
    patience: int = 20  # epochs without a better validation NLL before stopping
    lr_patience: int = 5  # epochs without improvement before the learning rate is halved
    seed: int = 0
    device: str = "auto"

    def resolved_hidden(self) -> int:
        if self.hidden is not None:
            if self.hidden <= 0:
                raise UserError("--hidden must be positive")
            return self.hidden
        return hidden_for_params(self.cell, self.params or DEFAULT_PARAMS, self.layers)

    def recipe_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return {"default": 3e-3, "paper": 1e-3}[self.recipe]

    def recipe_weight_noise(self) -> float:
        if self.weight_noise is not None:
            return self.weight_noise
        return 0.075 if self.recipe == "paper" else 0.06

    def validate(self) -> None:
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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def new_run_dir(cell: str, runs_dir: Path = DEFAULT_RUNS_DIR) -> Path:
    """runs/<cell>-<n>, with n one more than any existing run of that cell."""
    taken = [int(p.name.rsplit("-", 1)[1]) for p in runs_dir.glob(f"{cell}-*")
             if p.name.rsplit("-", 1)[1].isdigit()] if runs_dir.is_dir() else []
    return runs_dir / f"{cell}-{max(taken, default=0) + 1}"


# ----------------------------------------------------------------------------- batches

def training_windows(lengths: list[int], window: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(piece, start, end) windows covering every frame once, cut at a random phase per piece."""
    windows = []
    for piece, length in enumerate(lengths):
        if length <= window:
            windows.append((piece, 0, length))
            continue
        cut = int(rng.integers(window // 2, window + 1))  # first window half to full length
        starts = [0, *range(cut, length, window)]
        ends = [*starts[1:], length]
        windows.extend((piece, s, e) for s, e in zip(starts, ends))
    return windows


def transpose_limits(roll: np.ndarray) -> tuple[int, int]:
    """How far a piece can shift down and up without a note leaving the keyboard."""
    keys = np.flatnonzero(roll.any(0))
    if len(keys) == 0:
        return 0, 0
    return int(keys[0]), int(roll.shape[1] - 1 - keys[-1])


def epoch_batches(rolls: list[torch.Tensor], limits: list[tuple[int, int]], config: TrainConfig,
                  rng: np.random.Generator):
    """Yield (padded rolls (B,T,K), mask (B,T)) for one epoch; all randomness from `rng`."""
    windows = training_windows([len(r) for r in rolls], config.window, rng)
    # Sort by length (ties broken at random) so a batch wastes little on padding.
    order = np.lexsort((rng.random(len(windows)), [e - s for _, s, e in windows]))
    groups = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    for group_index in rng.permutation(len(groups)):
        members = [windows[i] for i in groups[group_index]]
        shifts = [0] * len(members)
        if config.augment_transpose:
            k = config.augment_transpose
            shifts = [int(rng.integers(-min(k, limits[p][0]), min(k, limits[p][1]) + 1))
                      for p, _, _ in members]
        longest = max(e - s for _, s, e in members)
        batch = torch.zeros(len(members), longest, rolls[0].shape[1])
        mask = torch.zeros(len(members), longest, dtype=torch.bool)
        for row, ((piece, start, end), shift) in enumerate(zip(members, shifts)):
            segment = rolls[piece][start:end]
            if shift:
                segment = torch.roll(segment, shift, dims=1)  # limits guarantee nothing wraps
            batch[row, :end - start] = segment
            mask[row, :end - start] = True
        yield batch, mask


# ----------------------------------------------------------------------------- checkpoint state

def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _restore_rng(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


@dataclass
class Progress:
    """Everything about the run's course that resume must restore exactly."""
    epoch: int = 0
    updates: int = 0
    seconds: float = 0.0
    best_valid: float = math.inf
    best_epoch: int = 0
    epochs_since_best: int = 0
    stopped: str = ""  # why training ended: "", "early stopping", "max epochs", "time limit"
    history: list = field(default_factory=list)


# ----------------------------------------------------------------------------- training

class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; last.pt holds the last finished epoch."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C, so a killed job still leaves a resumable last.pt."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. compare's parallel jobs): leave it alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(config: TrainConfig, run_dir: Path | None = None, resume: bool = False,
          display=None) -> dict:
    """Train (or resume) one run; returns the summary dict also stored in config.json.

    `display` receives progress callbacks (see cli.TrainDisplay); None trains silently.
    """
    from seqgate.corpus import load_dataset
    from seqgate.metrics import roll_statistics
    from seqgate.plots import plot_training_curves

    if resume:
        if run_dir is None:
            from seqgate.files import resolve_run_dir
            run_dir = resolve_run_dir(None)
        last_path = run_dir / "last.pt"
        if not last_path.is_file():
            raise UserError(f"nothing to resume: no last.pt in {run_dir}")
        from seqgate.model import load_checkpoint
        last = load_checkpoint(last_path)
        saved = TrainConfig(**json.loads(last["train_config"]))
        # Only the limits may change on resume; everything that shapes the numbers is the saved run's.
        saved.max_epochs, saved.max_minutes, saved.device = config.max_epochs, config.max_minutes, config.device
        config = saved
    config.validate()
    device = pick_device(config.device)
    dataset = load_dataset(config.data)
    train_rolls, valid_rolls = dataset.split("train"), dataset.split("valid")
    if not train_rolls:
        raise UserError(f"{config.data} has no training pieces")
    if not valid_rolls:
        raise UserError(f"{config.data} has no validation pieces; early stopping needs some")

    hidden = config.resolved_hidden()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = NextStepModel(config.cell, hidden, config.layers, config.dropout,
                          n_keys=train_rolls[0].shape[1])
    model.init_output_bias(torch.from_numpy(np.concatenate(train_rolls).mean(0)))
    model.to(device)
    if config.recipe == "paper":
        optimizer = torch.optim.RMSprop(model.parameters(), lr=config.recipe_lr(),
                                        weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.recipe_lr(),
                                     weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
                                                           patience=config.lr_patience)
    progress = Progress()
    tempos = [t for t in dataset.meta.get("tempos") or [] if t]
    data_info = {
        "path": str(Path(config.data).resolve()),
        "roll_format": dataset.roll_format(),
        "source": dataset.meta.get("source"),
        "median_qpm": float(np.median(tempos)) if tempos else None,
        "train_stats": roll_statistics(train_rolls),
        "split_pieces": {s: len(dataset.split(s)) for s in ("train", "valid", "test")},
    }

    if resume:
        model.load_state_dict(last["model"])
        optimizer.load_state_dict(last["optimizer"])
        scheduler.load_state_dict(last["scheduler"])
        torch.set_rng_state(last["torch_rng"])
        _restore_rng(rng, last["numpy_rng"])
        progress = Progress(**json.loads(last["progress"]))
        progress.stopped = ""
        # An interruption can fall after an epoch's metrics line and before its last.pt: the log
        # is rewritten from the checkpoint so it holds exactly the epochs being resumed from.
        from seqgate.files import write_text_atomic
        write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in progress.history))
    else:
        run_dir = run_dir or new_run_dir(config.cell)
        if (run_dir / "last.pt").exists():
            raise UserError(f"{run_dir} already holds a run; use --resume or another --run-dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    record_latest_run(run_dir)

    base_info = {
        "seqgate_version": __version__,
        "train": asdict(config),
        "model_config": model.config(),
        "parameters": model.n_parameters(),
        "device": str(device),
        "data": data_info,
    }

    def checkpoint_payload(with_training_state: bool) -> dict:
        payload = {"format": 1, "model_config": model.config(), "model": model.state_dict(),
                   "data": data_info, "epoch": progress.epoch, "valid_nll": progress.best_valid}
        if with_training_state:
            payload.update({
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": _rng_state(rng),
                "progress": json.dumps(asdict(progress)),
                "train_config": json.dumps(asdict(config)),
            })
        return payload

    def write_config(status: str) -> dict:
        summary = {**base_info, "run_dir": str(run_dir), "status": status, "epochs": progress.epoch, "updates": progress.updates,
                   "seconds": round(progress.seconds, 3), "best_epoch": progress.best_epoch,
                   "best_valid_nll": progress.best_valid if progress.best_epoch else None,
                   "stopped": progress.stopped}
        write_json_atomic(run_dir / "config.json", summary)
        return summary

    if not resume:
        write_config("training")
        save_checkpoint(run_dir / "last.pt", checkpoint_payload(True))

    train_tensors = [torch.from_numpy(r.astype(np.float32)) for r in train_rolls]
    limits = [transpose_limits(r) for r in train_rolls]
    valid_batches = padded_batches(valid_rolls, 64, device)
    train_frames = sum(len(r) for r in train_rolls)
    weight_noise = config.recipe_weight_noise()
    deadline = None if config.max_minutes is None else config.max_minutes * 60
    last_plot = 0.0

    if display:
        display.start(run_dir, base_info, progress)
    try:
        threads = few_threads_for_small_work(model, config.batch_size) if device.type == "cpu" \
            else contextlib.nullcontext()
        with sigterm_as_interrupt(), threads:
            while progress.epoch < config.max_epochs and not progress.stopped:
                epoch_start = time.perf_counter()
                model.train()
                nll_sum, frame_count = 0.0, 0
                for batch, mask in epoch_batches(train_tensors, limits, config, rng):
                    batch, mask = batch.to(device), mask.to(device)
                    noise = _add_weight_noise(model, weight_noise) if weight_noise else None
                    nll, _ = frame_nll(model, batch)
                    frames = int(mask.sum())
                    loss = (nll * mask).sum() / frames
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if noise is not None:
                        _remove_weight_noise(model, noise)  # the update applies to the clean weights
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                    optimizer.step()
                    progress.updates += 1
                    nll_sum += loss.item() * frames
                    frame_count += frames
                    if display:
                        display.batch(frames, nll_sum / frame_count)
                valid = evaluate_batches(model, valid_batches, len(valid_rolls))
                progress.epoch += 1
                progress.seconds += time.perf_counter() - epoch_start
                scheduler.step(valid["nll"])
                record = {"epoch": progress.epoch, "updates": progress.updates,
                          "seconds": round(progress.seconds, 3),
                          "train_nll": nll_sum / frame_count, "valid_nll": valid["nll"],
                          "valid_accuracy": valid["accuracy"], "lr": optimizer.param_groups[0]["lr"],
                          "frames_per_second": train_frames / max(time.perf_counter() - epoch_start, 1e-9)}
                improved = valid["nll"] < progress.best_valid
                if improved:
                    progress.best_valid, progress.best_epoch = valid["nll"], progress.epoch
                    progress.epochs_since_best = 0
                else:
                    progress.epochs_since_best += 1
                if progress.epochs_since_best >= config.patience:
                    progress.stopped = "early stopping"
                elif deadline is not None and progress.seconds >= deadline:
                    progress.stopped = "time limit"
                elif progress.epoch >= config.max_epochs:
                    progress.stopped = "max epochs"
                progress.history.append(record)
                with open(run_dir / "metrics.jsonl", "a") as handle:  # append-only log, one line per epoch
                    handle.write(json.dumps(record) + "\n")
                if improved:
                    save_checkpoint(run_dir / "best.pt", checkpoint_payload(False))
                save_checkpoint(run_dir / "last.pt", checkpoint_payload(True))
                if time.perf_counter() - last_plot > 15 or progress.stopped:
                    plot_training_curves(progress.history, run_dir / "curves.png",
                                         title=f"{config.cell}, {model.n_parameters():,} parameters")
                    last_plot = time.perf_counter()
                if display:
                    display.epoch(record, progress)
    except KeyboardInterrupt:
        write_config("interrupted")
        if display:
            display.stop()
        raise Interrupted(str(run_dir)) from None
    if display:
        display.stop()
    if progress.history:
        plot_training_curves(progress.history, run_dir / "curves.png",
                             title=f"{config.cell}, {model.n_parameters():,} parameters")
    return write_config("finished")


def _add_weight_noise(model: torch.nn.Module, std: float) -> list[torch.Tensor]:
    """Gaussian weight noise (Graves 2011), drawn afresh for every update as the paper did."""
    noise = []
    with torch.no_grad():
        for parameter in model.parameters():
            n = torch.randn_like(parameter) * std
            parameter.add_(n)
            noise.append(n)
    return noise


def _remove_weight_noise(model: torch.nn.Module, noise: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for parameter, n in zip(model.parameters(), noise):
            parameter.sub_(n)


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
