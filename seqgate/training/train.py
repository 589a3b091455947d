"""`seqgate train`: fit a next-step predictor to the train split, choosing by validation NLL.

Recipes:
  default  Adam (lr 3e-3), light weight noise (std 0.06), gradient norm clipped at 1, learning
           rate halved on a validation plateau, early stopping on validation NLL. The output bias
           starts at the training key frequencies. Chosen on JSB and Nottingham validation NLL;
           the README lists what was tried.
  paper    Chung et al. 2014: RMSProp, weight noise (std 0.075) and gradient norm clipped at 1,
           early stopping on validation NLL.
  dropout  the default with weight noise 0.1 and dropout on the recurrent output before the head
           that grows with the model's parameters per training frame (Recipe.dropout_for), the
           regularisation a model needs growing with how easily it can learn its corpus by heart.
           Chosen on JSB and Nottingham validation NLL (README).

Batches come from batches.py, the loss from the model itself (model.nll), the run folder's files
from runs.py. Ctrl-C or SIGTERM keeps last.pt at the last finished epoch; `--resume` continues
from it and, on CPU, ends with exactly the numbers of an uninterrupted run.

Under torchrun (`torchrun --nproc-per-node N -m seqgate train ...`) the same loop runs in every
process: each builds its share of every update (batches.epoch_batches), DistributedDataParallel
averages the gradients, validation is split by piece and reduced as sums (distributed.py), and
rank 0 alone writes the run folder. `--batch-size` is per process, as in PyTorch's DDP.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from seqgate import __version__
from seqgate.training.batches import epoch_batches, padded_batches, transpose_limits
from seqgate.data.dataset import SPLITS
from seqgate.training.distributed import World, joined
from seqgate.errors import UserError, is_number
from seqgate.training.evaluate import EVALUATION_BATCH_SIZE, evaluate_batches
from seqgate.music.metrics import describe_corpus
from seqgate.data.benchmarks import recognise_dataset
from seqgate.model.cells import CELLS
from seqgate.model.kernels import prepare_compiled_loops
from seqgate.model.network import NextStepModel, few_threads_for_small_work, shift_right
from seqgate.model.sizing import count_parameters, params_for_corpus
from seqgate.training.runs import Checkpoint, DataRecord, ResumeState, Run, new_run, open_run
from seqgate.settings import RECIPES, TrainConfig

PLOT_EVERY_SECONDS = 15  # redraw curves.png at most this often while training
# Test hook: when set to a folder, every process of a torchrun job saves its final weights there
# (rank-<k>.pt), so a test can check that the ranks agree; the run folder stays rank 0's alone.
RANK_WEIGHTS_ENV = "SEQGATE_TEST_RANK_WEIGHTS"


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


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; last.pt holds the last finished epoch. The message is the run's
    folder, empty when the signal came before the folder was chosen (nothing written then)."""


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
          display=None, dataset=None) -> dict:
    """Train (or resume) one run; returns the summary dict also stored in config.json.

    `display` receives progress callbacks (see display.TrainDisplay); None trains silently. `dataset`:
    config.data already read (compare reads it once for all its runs).
    """
    config.validate()  # the device name among the rest, before a process group is joined on it
    # SIGTERM is Ctrl-C from here to the end, the handling of a failure included: under torchrun a
    # failing peer brings a SIGTERM while this process is still saying why it stops (leaving the
    # process group, say), and the line the user reads must still name the run to resume.
    run = None
    with sigterm_as_interrupt():
        try:
            with joined(config.device) as world:
                # Rank 0 names (and for a new run, numbers) the folder; every rank reads it from there.
                run = Run(world.from_main(lambda: str(
                    run_dir if run_dir is not None else (open_run(None) if resume else new_run(config.cell)).folder)))
                return _train(config, run, resume, display, world, dataset)
        except KeyboardInterrupt:
            raise Interrupted(str(run.folder) if run is not None else "") from None


def write_out_corpus_settings(config: TrainConfig, dataset) -> None:
    """Fill in, in place, what a run decides from its corpus when not told: the parameter budget
    (sizing.params_for_corpus) and the recipe's dropout (Recipe.dropout_for). Written into the
    run's settings, they are what resume and compare's reuse of a run compare."""
    train = dataset.indices("train")
    frames = dataset.frames(train)
    if config.hidden is None and config.params is None:
        config.params = params_for_corpus(frames, recognise_dataset(dataset) is not None)
    if config.dropout is None:
        onsets = dataset.onsets is not None
        hidden, head_size = config.resolved_sizes(onsets)
        parameters = count_parameters(config.cell, hidden, config.layers, int(dataset.roll_format()["n_keys"]),
                                      head=config.head, head_size=head_size or None, onsets=onsets)
        config.dropout = config.recipe_dropout(parameters, frames)


def _train(config: TrainConfig, run: Run, resume: bool, display, world: World, dataset) -> dict:
    last = _last_checkpoint(run) if resume else None
    if last is not None:
        config = _resumed_config(last, config, run.checkpoint_path("last.pt"))
    data = TrainingData(config, world, dataset)
    write_out_corpus_settings(config, data.dataset)
    session = Session(config, data, run, world)
    if last is not None:
        session.restore(last)
    elif world.is_main:
        run.start()
    if world.is_main:
        run.mark_latest()
    if last is None:
        session.write_config("training")
        session.save_checkpoints(best=False)

    if world.device.type == "cpu" and CELLS[config.cell].cpu_kernel:
        prepare_compiled_loops(display.status, display.say) if display else prepare_compiled_loops()
    if display:
        display.start(run.folder, session.info, session.progress)
    model, progress = session.model, session.progress
    threads = (few_threads_for_small_work(model, config.batch_size) if world.device.type == "cpu"
               else contextlib.nullcontext())
    status = "failed"  # until the loop ends normally or is interrupted
    try:
        with sigterm_as_interrupt(), threads:
            while progress.epoch < config.max_epochs and not progress.stopped:
                started = time.perf_counter()
                train_nll = session.train_epoch(display)
                valid = evaluate_batches(model, data.valid_batches(), reduce=world.sum)
                session.end_epoch(train_nll, valid, started)
                if display:
                    display.epoch(progress.history[-1], progress)
        status = "finished"
        if os.environ.get(RANK_WEIGHTS_ENV):
            torch.save(model.state_dict(), Path(os.environ[RANK_WEIGHTS_ENV]) / f"rank-{world.rank}.pt")
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if display:
            display.stop()
        if status == "finished" and progress.history and world.is_main:
            session.plot()
        summary = session.write_config(status)
    return summary


def _last_checkpoint(run: Run) -> Checkpoint:
    if not run.has_checkpoint("last.pt"):
        raise UserError(f"nothing to resume: no last.pt in {run}")
    last = run.load_checkpoint("last.pt")
    if last.resume is None:
        raise UserError(f"{run.checkpoint_path('last.pt')} holds no state to resume from")
    return last


def _resumed_config(last: Checkpoint, asked: TrainConfig, path: Path) -> TrainConfig:
    """The saved run's settings: only the limits and the device may change on resume."""
    model = last.model_config
    try:
        saved = TrainConfig(**json.loads(last.resume.train_config))
        saved.validate()
        sizes = saved.resolved_sizes(model.onsets)
    except (KeyError, TypeError, ValueError, UserError) as error:
        raise UserError(f"{path}: its training settings cannot be read ({str(error)[:120]})") from None
    if sizes != (model.hidden, model.head_size) or saved.layers != model.layers \
            or saved.cell != model.cell or saved.head != model.head:
        raise UserError(f"{path}: its training settings do not match the model it holds")
    saved.max_epochs, saved.max_minutes, saved.device = asked.max_epochs, asked.max_minutes, asked.device
    return saved


class TrainingData:
    """The dataset, sparse as stored, and which of its pieces train and validate.

    Batches are made dense only when they are built (batches.py), so memory grows with the
    corpus's notes, not with frames x 88.
    """

    def __init__(self, config: TrainConfig, world: World, dataset=None):
        from seqgate.data.dataset import load_dataset

        dataset = load_dataset(config.data) if dataset is None else dataset
        self.dataset, self.world = dataset, world
        self.train, self.valid = dataset.indices("train"), dataset.indices("valid")
        if not self.train:
            raise UserError(f"{config.data} has no training pieces")
        if not self.valid:
            raise UserError(f"{config.data} has no validation pieces; early stopping needs some")
        self.n_keys = int(dataset.roll_format()["n_keys"])
        self.onsets = dataset.onsets is not None
        self.train_frames = dataset.frames(self.train)
        self.benchmark = recognise_dataset(dataset)  # one of the four benchmark corpora, or None
        tempos = [t for t in dataset.meta.get("tempos") or [] if t]
        train_stats, restrikes = describe_corpus(dataset, self.train)
        frequency = dataset.key_counts(self.train) / max(self.train_frames, 1)
        if restrikes is not None:  # the re-strike units start at how often a held key is struck again
            frequency = np.concatenate([frequency, restrikes])
        self.key_frequency = torch.from_numpy(frequency)
        self.record = DataRecord(
            path=str(Path(config.data).resolve()),
            roll_format=dataset.roll_format(),
            source=dataset.meta.get("source"),
            median_qpm=float(np.median(tempos)) if tempos else None,
            train_stats=train_stats,
            split_pieces={s: len(dataset.indices(s)) for s in SPLITS},
        )
        self.limits = [transpose_limits(dataset, p) for p in self.train]

    def updates_per_epoch(self, config: TrainConfig) -> int:
        """About the updates in one epoch: a piece longer than the window is cut first at a random
        point between half a window and a whole one (batches.training_windows), taken here at
        three quarters."""
        lengths = self.dataset.lengths[self.train].astype(np.int64)
        window = config.window
        rest = np.maximum(lengths - (3 * window) // 4, 0)
        windows = int(np.sum(np.where(lengths <= window, 1, 1 + (rest + window - 1) // window)))
        return -(-windows // (config.batch_size * self.world.size))

    def epoch(self, config: TrainConfig, rng: np.random.Generator):
        """This process's share of each update: (batch, mask, frames of the whole update)."""
        return epoch_batches(self.dataset, self.train, self.limits, window=config.window,
                             batch_size=config.batch_size, augment_transpose=config.augment_transpose,
                             rng=rng, rank=self.world.rank, world_size=self.world.size,
                             device=self.world.device)

    def valid_batches(self):
        """This process's share of the valid pieces (every world-size-th); evaluate_batches
        reduces the sums over all processes."""
        mine = self.valid[self.world.rank::self.world.size]
        return padded_batches(self.dataset, mine, EVALUATION_BATCH_SIZE, self.world.device)


def _check_progress(progress: Progress) -> None:
    """last.pt's progress as train writes it: counts that are whole numbers, a list of epochs."""
    for name in ("epoch", "updates", "best_epoch", "epochs_since_best"):
        value = getattr(progress, name)
        if not is_number(value, whole=True) or value < 0:
            raise ValueError(f"progress {name} is {value!r}")
    if not isinstance(progress.history, list) or not all(isinstance(r, dict) for r in progress.history):
        raise ValueError("progress history is not a list of records")
    if not isinstance(progress.seconds, (int, float)) or not isinstance(progress.best_valid, (int, float)):
        raise ValueError("progress times are not numbers")


class Session:
    """One run's model, optimizer, schedule, random state and progress, and what they write."""

    def __init__(self, config: TrainConfig, data: TrainingData, run: Run, world: World):
        self.config, self.data, self.run, self.world = config, data, run, world
        hidden, head_size = config.resolved_sizes(data.onsets)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.model = NextStepModel(config.cell, hidden, config.layers, config.dropout, n_keys=data.n_keys,
                                   head=config.head, head_size=head_size or None, onsets=data.onsets)
        self.model.init_output_bias(data.key_frequency)
        self.model.to(world.device)
        # The training loss goes through DistributedDataParallel's forward under torchrun, which
        # is what makes backward() average the gradients of every process.
        self.likelihood = world.wrap(Likelihood(self.model))
        optimizer = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[RECIPES[config.recipe].optimizer]
        self.optimizer = optimizer(self.model.parameters(), lr=config.recipe_lr(),
                                   weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5,
                                                                    patience=config.lr_patience)
        self.progress = Progress()
        self.weight_noise = config.recipe_weight_noise()
        self.deadline = None if config.max_minutes is None else config.max_minutes * 60
        self.last_plot = 0.0
        self.info = {"seqgate_version": __version__, "train": asdict(config),
                     "model_config": self.model.config().to_dict(), "parameters": self.model.n_parameters(),
                     "device": str(world.device), "processes": world.size, "data": data.record.to_dict(),
                     "epoch_frames": data.train_frames, "updates_per_epoch": data.updates_per_epoch(config)}

    def restore(self, last: Checkpoint) -> None:
        """Continue exactly where last.pt left off; the log is rewritten to match it, since an
        interruption can fall after an epoch's metrics line and before its last.pt."""
        state = last.resume
        try:
            self.model.load_state_dict(last.weights)
            self.optimizer.load_state_dict(state.optimizer)
            self.scheduler.load_state_dict(state.scheduler)
            torch.set_rng_state(state.torch_rng)
            self.rng.bit_generator.state = json.loads(state.numpy_rng)
            self.progress = Progress(**json.loads(state.progress))
            _check_progress(self.progress)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise UserError(f"{self.run.folder}/last.pt cannot be resumed ({str(error).splitlines()[0][:120]})") from None
        self.progress.stopped = ""
        self.run.rewrite_metrics(self.progress.history)

    def train_epoch(self, display) -> float:
        """One pass over the training windows; returns the epoch's mean training NLL per frame."""
        model, config, world = self.model, self.config, self.world
        model.train()
        nll_sum, frame_count = 0.0, 0
        for batch, mask, update_frames in self.data.epoch(config, self.rng):
            noise = add_weight_noise(model, self.weight_noise) if self.weight_noise else None
            nll = self.likelihood(shift_right(batch), batch)
            frames = int(mask.sum())
            # NLL summed over this process's frames, divided by the update's frames per process:
            # DDP's average over processes then gives the update's mean NLL per frame.
            loss = (nll * mask).sum() / (update_frames / world.size)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if noise is not None:
                remove_weight_noise(model, noise)  # the update applies to the clean weights
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            self.optimizer.step()
            self.progress.updates += 1
            nll_sum += loss.item() * update_frames / world.size
            frame_count += frames
            if display:
                display.batch(frames * world.size, nll_sum / max(frame_count, 1))
        nll_sum, frame_count = world.sum([nll_sum, frame_count])
        return nll_sum / frame_count

    def end_epoch(self, train_nll: float, valid: dict, started: float) -> None:
        """The one place for an epoch's bookkeeping: schedule, early stopping, log, checkpoints."""
        progress, config = self.progress, self.config
        progress.epoch += 1
        elapsed = self.world.max(time.perf_counter() - started)  # the time limit decides alike everywhere
        progress.seconds += elapsed
        self.scheduler.step(valid["nll"])
        record = {"epoch": progress.epoch, "updates": progress.updates,
                  "seconds": round(progress.seconds, 3), "train_nll": train_nll,
                  "valid_nll": valid["nll"], "valid_accuracy": valid["accuracy"],
                  "lr": self.optimizer.param_groups[0]["lr"],
                  "frames_per_second": self.data.train_frames / max(elapsed, 1e-9)}
        improved = valid["nll"] < progress.best_valid
        if improved:
            progress.best_valid, progress.best_epoch = valid["nll"], progress.epoch
            progress.epochs_since_best = 0
        else:
            progress.epochs_since_best += 1
        if progress.epochs_since_best >= config.patience:
            progress.stopped = "early stopping"
        elif self.deadline is not None and progress.seconds >= self.deadline:
            progress.stopped = "time limit"
        elif progress.epoch >= config.max_epochs:
            progress.stopped = "max epochs"
        progress.history.append(record)
        if not self.world.is_main:
            return
        self.run.append_metrics(record)
        self.save_checkpoints(best=improved)
        if time.perf_counter() - self.last_plot > PLOT_EVERY_SECONDS and not progress.stopped:
            self.plot()  # the last epoch's plot is drawn once, at the end

    def save_checkpoints(self, best: bool) -> None:
        if not self.world.is_main:
            return
        checkpoint = Checkpoint(self.model.config(), self.model.state_dict(), self.data.record,
                                self.progress.epoch, self.progress.best_valid)
        if best:
            self.run.save_checkpoint("best.pt", checkpoint)
        self.run.save_checkpoint("last.pt", replace(checkpoint, resume=ResumeState(
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            torch_rng=torch.get_rng_state(),
            numpy_rng=json.dumps(self.rng.bit_generator.state),
            progress=json.dumps(asdict(self.progress)),
            train_config=json.dumps(asdict(self.config)),
        )))

    def plot(self) -> None:
        from seqgate.music.plots import plot_training_curves

        plot_training_curves(self.progress.history, self.run.curves_path,
                             title=f"{self.config.cell}, {self.model.n_parameters():,} parameters")
        self.last_plot = time.perf_counter()

    def write_config(self, status: str) -> dict:
        progress = self.progress
        summary = {**self.info, "run_dir": str(self.run.folder), "status": status,
                   "epochs": progress.epoch, "updates": progress.updates,
                   "seconds": round(progress.seconds, 3), "best_epoch": progress.best_epoch,
                   "best_valid_nll": progress.best_valid if progress.best_epoch else None,
                   "stopped": progress.stopped}
        if self.world.is_main:
            self.run.write_config(summary)
        return summary


class Likelihood(torch.nn.Module):
    """model.nll as a module's forward, the call DistributedDataParallel wraps."""

    def __init__(self, model: NextStepModel):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.model.nll(inputs, targets)[0]


def add_weight_noise(model: torch.nn.Module, std: float) -> list[torch.Tensor]:
    """Gaussian weight noise (Graves 2011), drawn afresh for every update as the paper did."""
    noise = []
    with torch.no_grad():
        for parameter in model.parameters():
            n = torch.randn_like(parameter) * std
            parameter.add_(n)
            noise.append(n)
    return noise


def remove_weight_noise(model: torch.nn.Module, noise: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for parameter, n in zip(model.parameters(), noise):
            parameter.sub_(n)
