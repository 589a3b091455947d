"""Faults while writing: a full disk (a file-size limit stands in for it, with no root mount
needed), two commands writing one file at once, and a reader while a run is being written. Each
ends in one line or a defined result, and the file that was there before is kept whole."""

from __future__ import annotations

import hashlib
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from seqgate.data.dataset import load_dataset
from seqgate.errors import UserError
from seqgate.files import append_line, atomic_write
from seqgate.training.runs import Run, load_checkpoint_file

SAMPLE_MIDI = Path(__file__).resolve().parents[1] / "sample_midi"
TRAIN = ["train", "--cell", "gru", "--hidden", "8", "--window", "24", "--device", "cpu"]


def run_with_file_limit(limit_bytes: int, *args, cwd):
    """`python -m seqgate ARGS` with no file allowed to grow past limit_bytes (RLIMIT_FSIZE): the
    write that reaches it fails with EFBIG, as a full disk fails with ENOSPC."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return subprocess.run([sys.executable, "-m", "seqgate", *map(str, args)], preexec_fn=limit,
                          capture_output=True, text=True, cwd=cwd, timeout=180)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary and scratch files that a failed write left behind (their names start with a dot)."""
    return sorted(p.name for p in folder.rglob(".*"))


def test_prepare_on_a_full_disk_refuses_in_one_line_and_keeps_the_old_dataset(tmp_path):
    done = run_cli("prepare", SAMPLE_MIDI, "-o", "data.npz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before = digest(tmp_path / "data.npz")
    assert (tmp_path / "data.npz").stat().st_size > 4000

    refused = run_with_file_limit(4000, "prepare", SAMPLE_MIDI, "-o", "data.npz", cwd=tmp_path)
    assert_one_line_error(refused)
    assert "cannot write data.npz: File too large" in refused.stderr and "is kept" in refused.stderr
    assert digest(tmp_path / "data.npz") == before
    assert leftovers(tmp_path) == []
    assert load_dataset(tmp_path / "data.npz").lengths.sum() > 0


def test_train_on_a_full_disk_keeps_best_and_last_and_resume_continues(tiny_dataset, tmp_path):
    done = run_cli(*TRAIN, "--data", tiny_dataset, "--max-epochs", "2", "--run-dir", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = Run(tmp_path / "run")
    kept = {name: digest(run.checkpoint_path(name)) for name in ("best.pt", "last.pt")}
    smallest = min(run.checkpoint_path(name).stat().st_size for name in kept)

    # Room for the metrics line and config.json, not for a checkpoint.
    refused = run_with_file_limit(smallest - 1, *TRAIN, "--data", tiny_dataset, "--max-epochs", "5",
                                  "--run-dir", "run", "--resume", cwd=tmp_path)
    assert_one_line_error(refused)
    assert "cannot write run/" in refused.stderr and "File too large" in refused.stderr
    assert {name: digest(run.checkpoint_path(name)) for name in kept} == kept
    assert leftovers(tmp_path) == []
    assert run.read_config()["status"] == "failed"

    resumed = run_cli(*TRAIN, "--data", tiny_dataset, "--max-epochs", "4", "--run-dir", "run", "--resume",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3, 4]
    assert run.load_checkpoint("last.pt").epoch == 4


def test_a_failed_append_leaves_no_half_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n')
    script = (f"from seqgate.files import append_line\n"
              f"append_line({str(log)!r}, '{{\"epoch\": 2, \"notes\": \"' + 'x' * 500 + '\"}}')\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
    result = subprocess.run([sys.executable, "-c", script], preexec_fn=limit, capture_output=True, text=True)
    assert result.returncode != 0 and "UserError: cannot write" in result.stderr
    assert log.read_text() == '{"epoch": 1}\n'  # the 100 bytes that fitted were cut back off
    append_line(log, '{"epoch": 2}')
    assert log.read_text().splitlines() == ['{"epoch": 1}', '{"epoch": 2}']


def test_an_error_of_the_callers_own_passes_through_atomic_write_untouched(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(FileNotFoundError):
        with atomic_write(target, "w") as handle:
            handle.write("new")
            open(tmp_path / "missing" / "input")  # the caller's own read, not the write
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot write"):  # its folder cannot be made
        with atomic_write(tmp_path / "a-file" / "out.txt", "w"):
            pass
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_two_prepares_of_one_output_at_once_leave_one_whole_dataset(tmp_path):
    command = [sys.executable, "-m", "seqgate", "prepare", str(SAMPLE_MIDI), "-o", "same.npz"]
    first, second = (subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for _ in range(2))
    for process in (first, second):
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    alone = run_cli("prepare", SAMPLE_MIDI, "-o", "alone.npz", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    same, reference = load_dataset(tmp_path / "same.npz"), load_dataset(tmp_path / "alone.npz")
    assert same.names == reference.names and (same.lengths == reference.lengths).all()
    assert leftovers(tmp_path) == []


def test_a_reader_never_sees_a_half_written_checkpoint(tiny_dataset, tmp_path):
    writer = subprocess.Popen([sys.executable, "-m", "seqgate", *TRAIN, "--data", str(tiny_dataset),
                               "--max-epochs", "40", "--patience", "1000", "--run-dir", "run"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = Run(tmp_path / "run").checkpoint_path("last.pt")
    epochs = []
    try:
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            if last.exists():
                epochs.append(load_checkpoint_file(last).epoch)  # raises on a partial file
    finally:
        _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    # The reader saw the file replaced many times over while it read, always whole, in order.
    assert len(set(epochs)) >= 10 and epochs == sorted(epochs)
