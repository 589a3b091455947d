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
import os
from pathlib import Path

from seqgate.errors import UserError
from seqgate.files import atomic_write, write_json_atomic, write_text_atomic

DEFAULT_RUNS_DIR = Path("runs")
LATEST_RUN_FILE = "LATEST"
CHECKPOINTS = ("best.pt", "last.pt")


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
        """The run's config.json, or {} when it is missing or not a JSON object."""
        return _read_json_object(self.folder / "config.json")

    def write_config(self, summary: dict) -> None:
        write_json_atomic(self.folder / "config.json", summary)

    def is_finished(self) -> bool:
        return self.read_config().get("status") == "finished" and self.has_checkpoint("best.pt")

    # ---- metrics.jsonl
    def read_metrics(self) -> list[dict]:
        path = self.folder / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def append_metrics(self, record: dict) -> None:
        with open(self.folder / "metrics.jsonl", "a") as handle:  # append-only, one line per epoch
            handle.write(json.dumps(record) + "\n")

    def rewrite_metrics(self, records: list[dict]) -> None:
        write_text_atomic(self.folder / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))

    # ---- checkpoints
    def save_checkpoint(self, name: str, payload: dict) -> None:
        import torch

        with atomic_write(self.checkpoint_path(name), "wb") as handle:
            torch.save(payload, handle)

    def load_checkpoint(self, name: str = "best.pt", map_location="cpu") -> dict:
        return load_checkpoint_file(self.checkpoint_path(name), map_location)

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
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def load_checkpoint_file(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint with weights_only=True: tensors and plain data only, never code."""
    import torch

    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types; all mean "not a checkpoint we trust"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"refusing to load {path}: not a plain-tensor seqgate checkpoint "
                        f"({first_line[:160]})") from None
    if not isinstance(checkpoint, dict) or "model_config" not in checkpoint or "model" not in checkpoint:
        raise UserError(f"{path} is not a seqgate checkpoint")
    return checkpoint


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
