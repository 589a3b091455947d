"""Default locations and atomic file writing, shared by every stage.

Every file seqgate writes goes to a temporary name in the destination folder and is renamed into
place, so a crash or Ctrl-C never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from seqgate.errors import UserError

# `seqgate prepare` writes here and `seqgate train` reads from here when given no options.
DEFAULT_DATASET = Path("seqgate-data.npz")
# Training runs live under this folder; LATEST_RUN_FILE names the run trained last.
DEFAULT_RUNS_DIR = Path("runs")
LATEST_RUN_FILE = "LATEST"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it onto `path`, else remove it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file 0600; give it the permissions an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def record_latest_run(run_dir: str | os.PathLike) -> None:
    """Remember `run_dir` as the run trained last, for `sample` and `evaluate` without --run."""
    run_dir = Path(run_dir)
    write_text_atomic(run_dir.parent / LATEST_RUN_FILE, run_dir.name + "\n")


def resolve_run_dir(run: str | os.PathLike | None, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path:
    """The run folder to use: the one given, else the one trained last under `runs_dir`."""
    if run is not None:
        run_dir = Path(run)
        if run_dir.is_file():  # a checkpoint given directly: its folder is the run
            run_dir = run_dir.parent
        if not run_dir.is_dir():
            raise UserError(f"no run folder at {run_dir}")
        return run_dir
    runs_dir = Path(runs_dir)
    marker = runs_dir / LATEST_RUN_FILE
    if marker.is_file():
        candidate = runs_dir / marker.read_text().strip()
        if (candidate / "best.pt").is_file():
            return candidate
    trained = sorted(runs_dir.glob("*/best.pt"), key=lambda p: p.stat().st_mtime) if runs_dir.is_dir() else []
    if not trained:
        raise UserError(f"no trained run under {runs_dir}/; run `seqgate train` first")
    return trained[-1].parent
