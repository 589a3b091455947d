"""torchrun: two CPU processes (gloo) train one run; rank 0 alone writes it; SIGTERM leaves a
last.pt that `--resume` continues under torchrun; a rank that dies or cannot write brings the run
down at once, in one line from each rank still alive, and `--resume` continues it."""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seqgate.training.distributed import World
from seqgate.training.runs import Run
from seqgate.training.train import RANK_WEIGHTS_ENV

# A small GRU with the NADE head (the default) and weight noise on (the default recipe), so the
# test covers every random draw that the processes must make alike.
TRAIN = ["train", "--cell", "gru", "--hidden", "8", "--window", "24", "--seed", "5", "--device", "cpu"]


def torchrun(*args, cwd, env=None, **popen):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "seqgate", *args]
    return subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finish(process, timeout=240):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


def test_a_world_of_one_sums_and_maxes_without_a_process_group():
    world = World()
    assert world.sum([1.5, 2]).tolist() == [1.5, 2.0]
    assert world.max(3.0) == 3.0 and world.from_main(lambda: "runs/gru-1") == "runs/gru-1"
    assert not torch.distributed.is_initialized()


def test_two_processes_agree_with_each_other_and_with_one_process_on_the_same_updates(tiny_dataset, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    two = torchrun(*TRAIN, "--data", str(tiny_dataset), "--max-epochs", "3", "--batch-size", "2",
                   "--run-dir", "two", cwd=tmp_path, env={RANK_WEIGHTS_ENV: str(weights)})
    finish(two)
    # One process with the global batch (2 processes x 2 windows) makes the same updates.
    one = subprocess.run([sys.executable, "-m", "seqgate", *TRAIN, "--data", str(tiny_dataset),
                          "--max-epochs", "3", "--batch-size", "4", "--run-dir", "one"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-3000:]

    rank0 = torch.load(weights / "rank-0.pt", weights_only=True)
    rank1 = torch.load(weights / "rank-1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0), "the ranks' weights differ"
    alone = Run(tmp_path / "one").load_checkpoint("last.pt").weights
    for name, tensor in rank0.items():
        assert torch.allclose(tensor, alone[name], atol=1e-5), name

    # Rank 0 alone wrote the run: one metrics line per epoch, no second run folder anywhere.
    run = Run(tmp_path / "two")
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3]
    config = run.read_config()
    assert config["processes"] == 2 and config["status"] == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "one", "tiny.npz", "two", "weights"]
    assert (tmp_path / "LATEST").read_text().strip() == "one"  # the run trained after "two"
    assert config["epochs"] == 3
    one_record, two_record = Run(tmp_path / "one").read_metrics()[-1], run.read_metrics()[-1]
    assert one_record["updates"] == two_record["updates"]
    assert two_record["valid_nll"] == pytest.approx(one_record["valid_nll"], rel=1e-5)
    assert two_record["train_nll"] == pytest.approx(one_record["train_nll"], rel=1e-5)


def test_sigterm_to_the_torchrun_group_leaves_a_last_pt_that_resume_continues(tiny_dataset, tmp_path):
    process = torchrun(*TRAIN, "--data", str(tiny_dataset), "--max-epochs", "1000", "--patience", "1000",
                       "--run-dir", "run", cwd=tmp_path, start_new_session=True)
    run = Run(tmp_path / "run")
    deadline = time.monotonic() + 120

    def saved_epoch() -> int:
        # last.pt, not metrics.jsonl: an epoch's metrics line is written just before its last.pt,
        # and a signal between the two rightly leaves last.pt at the epoch before.
        return run.load_checkpoint("last.pt").epoch if run.has_checkpoint("last.pt") else 0

    while saved_epoch() < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert saved_epoch() >= 2, process.communicate()[1][-3000:]
    os.killpg(process.pid, signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode != 0
    kept = run.load_checkpoint("last.pt").epoch
    assert kept >= 2

    resumed = torchrun(*TRAIN, "--data", str(tiny_dataset), "--max-epochs", str(kept + 2),
                       "--patience", "1000", "--run-dir", "run", "--resume", cwd=tmp_path)
    finish(resumed)
    config = run.read_config()
    assert config["status"] == "finished" and config["epochs"] == kept + 2
    assert [r["epoch"] for r in run.read_metrics()] == list(range(1, kept + 3))
    assert np.isfinite(run.read_metrics()[-1]["valid_nll"])


def rank_process(torchrun_pid: int, rank: int) -> int | None:
    """The pid of torchrun's worker of `rank` (read off /proc: its parent and its RANK)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == torchrun_pid and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def assert_no_rank_traceback(stderr: str):
    # torchrun's own summary of the failure follows, with its traceback; no rank's may be there
    assert "[rank0]: Traceback" not in stderr and "[rank1]: Traceback" not in stderr, stderr[-3000:]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process in /proc (Linux)")
def test_a_killed_rank_or_a_full_disk_brings_the_run_down_at_once_and_resume_continues(tiny_dataset, tmp_path):
    process = torchrun(*TRAIN, "--data", str(tiny_dataset), "--max-epochs", "1000", "--patience", "1000",
                       "--run-dir", "run", cwd=tmp_path)
    run = Run(tmp_path / "run")
    deadline = time.monotonic() + 120
    while not run.has_checkpoint("last.pt") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(1)
    victim = rank_process(process.pid, 1)
    assert victim is not None, process.communicate()[1][-3000:]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    _, err = process.communicate(timeout=120)
    assert time.monotonic() - killed < 60 and process.returncode != 0
    assert_no_rank_traceback(err)
    # Rank 0 either meets the dead peer in a collective, or is between two (saving, validating)
    # when torchrun's SIGTERM reaches it: one line either way, saying how to continue.
    lines = [line for line in err.splitlines() if line.startswith(("seqgate:", "interrupted:"))]
    assert len(lines) == 1, [line for line in err.splitlines() if "exitcode" in line or "rank" in line]
    assert lines[0].startswith(("seqgate: error: rank 0 of 2: lost contact with the other processes",
                                "interrupted: run/last.pt holds the last finished epoch")), lines
    assert "--resume" in lines[0]

    # A full disk on rank 0 (the one that writes): room for the logs, not for a checkpoint.
    last = run.checkpoint_path("last.pt").read_bytes()
    kept = run.load_checkpoint("last.pt").epoch
    limit = run.checkpoint_path("best.pt").stat().st_size - 1

    def full_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    started = time.monotonic()
    process = torchrun(*TRAIN, "--data", str(tiny_dataset), "--max-epochs", str(kept + 5), "--patience", "1000",
                       "--run-dir", "run", "--resume", cwd=tmp_path, preexec_fn=full_disk)
    _, err = process.communicate(timeout=120)
    assert time.monotonic() - started < 60 and process.returncode != 0
    assert_no_rank_traceback(err)
    lines = [line for line in err.splitlines() if line.startswith(("seqgate:", "interrupted:"))]
    assert any("rank 0 of 2: cannot write run/" in line and "File too large" in line for line in lines), err[-3000:]
    # rank 1 either says it lost rank 0 or is stopped by torchrun first; never a traceback
    assert all(line.startswith(("seqgate: error: rank 0 of 2: cannot write",
                                "seqgate: error: rank 1 of 2: lost contact")) for line in lines), lines
    assert run.checkpoint_path("last.pt").read_bytes() == last

    resumed = torchrun(*TRAIN, "--data", str(tiny_dataset), "--max-epochs", str(kept + 1),
                       "--patience", "1000", "--run-dir", "run", "--resume", cwd=tmp_path)
    finish(resumed)
    assert [r["epoch"] for r in run.read_metrics()] == list(range(1, kept + 2))
