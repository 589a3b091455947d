"""The run folder: where one training run keeps everything, and the only module that knows its files.

  config.json    the run's settings and summary; "status" is training, interrupted or finished
  metrics.jsonl  one JSON line per epoch: epoch, updates, seconds, train/valid NLL, ...
  best.pt        the model at the lowest validation NLL (plain tensors and JSON-able values)
  last.pt        everything needed to resume: model, optimizer, scheduler, RNG states, progress
  curves.png     the learning curves
  compare.json   written by `compare`: the dataset fingerprint the run was trained on
  train.log      the output of a run trained in a `compare --jobs` process

`seqgate train` makes runs/<cell>-<n>; `compare` makes <output>/<cell>-seed<k> (then -2, -3, ...
beside a folder it may not reuse). runs/LATEST names the run trained last, which `sample` and
`evaluate` use when given none. Checkpoints are read with torch.load(weights_only=True), so a
stranger's checkpoint can hold tensors and plain data, never code.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seqgate.data.roll import LOWEST_PITCH, is_grid
from seqgate.errors import UserError, is_finite_number, is_number
from seqgate.files import append_line, atomic_write, write_json_atomic, write_text_atomic
from seqgate.model.network import ModelConfig, NextStepModel, check_weights

DEFAULT_RUNS_DIR = Path("runs")
LATEST_RUN_FILE = "LATEST"
CHECKPOINTS = ("best.pt", "last.pt")
METRICS_FIELDS = ("epoch", "updates", "seconds", "train_nll", "valid_nll")  # numbers in every record


class Run:
    """One run folder. Creating the object touches nothing on disk."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r})"

    def __str__(self) -> str:
        return str(self.folder)

    @property
    def name(self) -> str:
        return self.folder.name

    # ---- files
    @property
    def curves_path(self) -> Path:
        return self.folder / "curves.png"

    @property
    def log_path(self) -> Path:
        return self.folder / "train.log"

    def checkpoint_path(self, name: str = "best.pt") -> Path:
        if name not in CHECKPOINTS:
            raise UserError(f"unknown checkpoint {name!r}; choose one of {', '.join(CHECKPOINTS)}")
        return self.folder / name

    def has_checkpoint(self, name: str = "best.pt") -> bool:
        return self.checkpoint_path(name).is_file()

    # ---- life cycle
    def start(self) -> None:
        """Make the folder for a new run; refuse one that already holds a run."""
        if self.has_checkpoint("last.pt"):
            raise UserError(f"{self.folder} already holds a run; use --resume or another --run-dir")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "metrics.jsonl").unlink(missing_ok=True)

    def mark_latest(self) -> None:
        """Remember this run as the one trained last, for `sample` and `evaluate` without --run."""
        write_text_atomic(self.folder.parent / LATEST_RUN_FILE, self.name + "\n")

    # ---- config.json
    def read_config(self) -> dict:
        """The run's config.json, or {} when it is missing; UserError when it is not a JSON object."""
        return _read_json_object(self.folder / "config.json")

    def write_config(self, summary: dict) -> None:
        write_json_atomic(self.folder / "config.json", summary)

    def is_finished(self) -> bool:
        return self.read_config().get("status") == "finished" and self.has_checkpoint("best.pt")

    # ---- metrics.jsonl
    def read_metrics(self) -> list[dict]:
        """One record per epoch; UserError names the first line that is not one. A last line
        without its newline is one being appended right now (a run training in another process)
        and is left for the next read."""
        path = self.folder / "metrics.jsonl"
        if not path.is_file():
            return []
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read {path}: {error}") from None
        lines = text.split("\n")[:-1]  # what follows the last newline is not a whole line yet
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not (isinstance(record, dict) and all(is_number(record.get(key)) for key in METRICS_FIELDS)):
                raise UserError(f"{path}, line {number}: not a metrics record "
                                f"(needs numbers for {', '.join(METRICS_FIELDS)})")
            records.append(record)
        return records

    def append_metrics(self, record: dict) -> None:
        append_line(self.folder / "metrics.jsonl", json.dumps(record))  # one line per epoch

    def rewrite_metrics(self, records: list[dict]) -> None:
        write_text_atomic(self.folder / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))

    # ---- checkpoints
    def save_checkpoint(self, name: str, checkpoint: "Checkpoint") -> None:
        import torch

        with atomic_write(self.checkpoint_path(name), "wb") as handle:
            torch.save(checkpoint.to_payload(), handle)

    def load_checkpoint(self, name: str = "best.pt", map_location="cpu") -> "Checkpoint":
        return load_checkpoint_file(self.checkpoint_path(name), map_location)

    def load_model(self, name: str = "best.pt", map_location="cpu") -> tuple[NextStepModel, "Checkpoint"]:
        return load_model(self.checkpoint_path(name), map_location)

    # ---- compare's marker
    def read_marker(self) -> dict:
        return _read_json_object(self.folder / "compare.json")

    def write_marker(self, fingerprint: str, data: str) -> None:
        write_json_atomic(self.folder / "compare.json", {"data_fingerprint": fingerprint, "data": data})

    def reuse_action(self, train_settings: dict, fingerprint: str, hidden: int) -> str | None:
        """"reused" for a finished run trained with exactly these settings on the same data,
        "resumed" for such a run left unfinished, None when it was trained otherwise."""
        saved = self.read_config()
        if (saved.get("train") != train_settings
                or self.read_marker().get("data_fingerprint") != fingerprint
                or (saved.get("model_config") or {}).get("hidden") != hidden):
            return None
        if saved.get("status") == "finished" and self.has_checkpoint("best.pt"):
            return "reused"
        if self.has_checkpoint("last.pt"):
            return "resumed"
        return None


def _read_json_object(path: Path) -> dict:
    """{} for a missing file; the object in it; UserError when it holds anything else."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UserError(f"{path} is not a JSON file ({str(error)[:120]})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} holds a JSON {type(value).__name__}, not an object")
    return value


# ---- the checkpoint record: what best.pt and last.pt hold, written by train, read by everyone


@dataclass(frozen=True)
class DataRecord:
    """What a run keeps of the data it was trained on (a checkpoint's "data")."""

    path: str | None = None  # the dataset file; evaluate reads it again when given no other
    roll_format: dict = field(default_factory=dict)  # Dataset.roll_format(): keys, lowest pitch, grid, onsets
    source: str | None = None
    median_qpm: float | None = None  # the corpus's median source tempo, the tempo of samples
    train_stats: dict | None = None  # metrics.describe_corpus of the training split
    split_pieces: dict | None = None

    @property
    def frames_per_quarter(self) -> int | None:
        """The beat grid of the roll; None for a roll off the grid (the benchmark .mat corpora)."""
        return self.roll_format.get("frames_per_quarter")

    @property
    def lowest_pitch(self) -> int:
        """The MIDI pitch of the roll's first key."""
        return self.roll_format.get("lowest_pitch", LOWEST_PITCH)

    @property
    def frames_per_beat(self) -> int:
        """The grid for anything that must count beats: a roll off the grid counts one frame a
        quarter note."""
        return self.frames_per_quarter or 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_stored(cls, stored, path) -> "DataRecord":
        problem = _data_record_problem(stored)
        if problem:
            raise UserError(f"{path}: the record of its training data {problem}")
        return cls(**{name: stored[name] for name in cls.__dataclass_fields__ if name in stored})


@dataclass(frozen=True)
class ResumeState:
    """What last.pt holds beyond best.pt: everything `train --resume` restores exactly."""

    optimizer: dict
    scheduler: dict
    torch_rng: object  # torch.get_rng_state()
    numpy_rng: str  # JSON of numpy's bit generator state
    progress: str  # JSON of train.Progress
    train_config: str  # JSON of the TrainConfig


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint file, validated: the model it holds, its weights, its data, and for last.pt
    what resume needs. The one reader of the stored form; old files are upgraded here."""

    model_config: ModelConfig
    weights: dict
    data: DataRecord
    epoch: int = 0
    valid_nll: float = math.inf  # the best validation NLL when it was written
    resume: ResumeState | None = None

    FORMAT = 1

    def to_payload(self) -> dict:
        payload = {"format": self.FORMAT, "model_config": self.model_config.to_dict(), "model": self.weights,
                   "weights_digest": weights_digest(self.weights),
                   "data": self.data.to_dict(), "epoch": self.epoch, "valid_nll": self.valid_nll}
        return {**payload, **asdict(self.resume)} if self.resume is not None else payload

    @classmethod
    def from_payload(cls, payload, path) -> "Checkpoint":
        if not isinstance(payload, dict) or not isinstance(payload.get("model_config"), dict) \
                or not isinstance(payload.get("model"), dict):
            raise UserError(f"{path} is not a seqgate checkpoint")
        config = ModelConfig.from_stored(payload["model_config"], path)
        check_weights(config, payload["model"], path)
        # torch does not check the zip's CRCs: a flipped bit in the tensor data would load as other,
        # valid-looking weights. Checkpoints from before the digest carry none and load as they are.
        digest = payload.get("weights_digest")
        if digest is not None and digest != weights_digest(payload["model"]):
            raise UserError(f"{path}: its weights do not match the digest saved with them (the file is damaged)")
        resume_fields = ResumeState.__dataclass_fields__
        resume = ResumeState(**{name: payload[name] for name in resume_fields}) \
            if all(name in payload for name in resume_fields) else None
        epoch, valid_nll = payload.get("epoch", 0), payload.get("valid_nll", math.inf)
        if not (is_number(epoch, whole=True) and epoch >= 0) or not is_number(valid_nll):
            raise UserError(f"{path}: its epoch or validation NLL is not a number")
        return cls(config, payload["model"], DataRecord.from_stored(payload.get("data", {}), path),
                   epoch, float(valid_nll), resume)

    def build_model(self) -> NextStepModel:
        """The model it holds, in eval mode."""
        model = NextStepModel.from_config(self.model_config)
        model.load_state_dict(self.weights)
        model.eval()
        return model


def weights_digest(weights: dict) -> str:
    """SHA-256 of every tensor's name, dtype, shape and bytes, in name order."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint_file(path: str | os.PathLike, map_location="cpu") -> Checkpoint:
    """Read and validate a checkpoint; torch.load(weights_only=True): tensors and plain data
    only, never code."""
    import torch

    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types; all mean "not a checkpoint we trust"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"refusing to load {path}: not a plain-tensor seqgate checkpoint "
                        f"({first_line[:160]})") from None
    return Checkpoint.from_payload(payload, path)


def load_model(path: str | os.PathLike, map_location="cpu") -> tuple[NextStepModel, Checkpoint]:
    """The model a checkpoint file holds, in eval mode, and its record."""
    checkpoint = load_checkpoint_file(path, map_location)
    return checkpoint.build_model(), checkpoint


def _data_record_problem(data) -> str | None:
    """What is wrong with a checkpoint's record of its training data, or None."""
    if not isinstance(data, dict):
        return "is not a dictionary"
    if data.get("path") is not None and not isinstance(data["path"], str):
        return "has a path that is not text"
    if data.get("source") is not None and not isinstance(data["source"], str):
        return "has a source that is not text"
    if data.get("median_qpm") is not None and not (is_finite_number(data["median_qpm"]) and data["median_qpm"] > 0):
        return f"has a median tempo of {data['median_qpm']!r}"
    for name in ("train_stats", "split_pieces"):
        if data.get(name) is not None and not isinstance(data[name], dict):
            return f"has {name.replace('_', ' ')} that are not a dictionary"
    roll_format = data.get("roll_format", {})
    if not isinstance(roll_format, dict):
        return "has a roll format that is not a dictionary"
    grid = roll_format.get("frames_per_quarter")
    if grid is not None and not is_grid(grid):
        return f"has {grid!r} frames per quarter"
    for key in ("n_keys", "lowest_pitch"):
        if roll_format.get(key) is not None and not is_number(roll_format[key], whole=True):
            return f"has {key} {roll_format[key]!r}"
    if not isinstance(roll_format.get("onsets", False), bool):
        return f"has onsets {roll_format['onsets']!r}"
    return None


def new_run(cell: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Run:
    """runs/<cell>-<n>, with n one more than any existing run of that cell."""
    runs_dir = Path(runs_dir)
    taken = [int(p.name.rsplit("-", 1)[1]) for p in runs_dir.glob(f"{cell}-*")
             if p.name.rsplit("-", 1)[1].isdigit()] if runs_dir.is_dir() else []
    return Run(runs_dir / f"{cell}-{max(taken, default=0) + 1}")


def open_run(run: str | os.PathLike | None, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Run:
    """The run folder given (or the folder of a checkpoint given), else the run trained last."""
    if run is not None:
        folder = Path(run)
        if folder.is_file():  # a checkpoint given directly: its folder is the run
            folder = folder.parent
        if not folder.is_dir():
            raise UserError(f"no run folder at {folder}")
        return Run(folder)
    runs_dir = Path(runs_dir)
    marker = runs_dir / LATEST_RUN_FILE
    if marker.is_file():
        candidate = Run(runs_dir / marker.read_text().strip())
        if candidate.has_checkpoint("best.pt"):
            return candidate
    trained = sorted(runs_dir.glob("*/best.pt"), key=lambda p: p.stat().st_mtime) if runs_dir.is_dir() else []
    if not trained:
        raise UserError(f"no trained run under {runs_dir}/; run `seqgate train` first")
    return Run(trained[-1].parent)


def compare_runs(output: Path, cell: str, seed: int) -> list[Run]:
    """The folders under a comparison that may hold this cell and seed, in the order made."""
    base = f"{cell}-seed{seed}"

    def number(path: Path) -> int:
        tail = path.name[len(base):].lstrip("-")
        return int(tail) if tail.isdigit() else 1

    candidates = [p for p in output.glob(f"{base}*") if p.is_dir()
                  and (p.name == base or (p.name.startswith(base + "-") and p.name[len(base) + 1:].isdigit()))]
    return [Run(p) for p in sorted(candidates, key=number)]


def new_compare_run(output: Path, cell: str, seed: int) -> Run:
    """<cell>-seed<k>, or -2, -3, ... after it when that name is taken: nothing is overwritten."""
    base = f"{cell}-seed{seed}"
    taken = {p.name for p in output.iterdir()} if output.is_dir() else set()
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return Run(output / name)
