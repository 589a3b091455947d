"""Quality per minute: what `seqgate train` reaches on a corpus after 2, 5, 10 (and 30) minutes.

    python bench/train_minutes.py DATA.npz --minutes 10                 # the default GRU run
    python bench/train_minutes.py DATA.npz --minutes 30 --cell lstm
    python bench/train_minutes.py DATA.npz --minutes 10 -- --params 100000   # options for train

Runs the real command a user types, `seqgate train --cell CELL --data DATA --max-minutes M` with
every other option at its default (plus any given after --), in a fresh folder, then reads the
run's metrics.jsonl: training frames per second (the median over epochs of the training frames of
an epoch over its seconds, validation included, as the progress line shows it), seconds per
epoch, and the best validation NLL among the epochs finished by each mark of the run's own
training clock (record["seconds"]). Prints one line per mark. The run stops at M minutes, or
earlier by early stopping or the epoch limit, whichever binds; the line says which.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKS_MINUTES = (2, 5, 10, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="dataset file from `seqgate prepare`")
    parser.add_argument("--minutes", type=float, default=10.0, help="--max-minutes of the run")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: a temporary folder)")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.train_options = argv[split + 1:]  # further `seqgate train` options, after --

    # Absolute: the command runs inside workdir, so a relative --run-dir would land one level down.
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="seqgate-minutes-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = workdir / f"{args.cell}-run"
    command = [sys.executable, "-m", "seqgate", "train", "--cell", args.cell, "--data", str(args.data.resolve()),
               "--max-minutes", f"{args.minutes:g}", "--run-dir", str(run_dir), *args.train_options]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run_dir / "config.json").read_text())

    speed = statistics.median(r["frames_per_second"] for r in records)
    per_epoch = records[-1]["seconds"] / len(records)
    print(f"{args.cell} on {args.data.name}: {config['parameters']:,} parameters "
          f"(hidden {config['model_config']['hidden']}, {config['model_config']['head']} head), "
          f"batch {config['train']['batch_size']}, "
          f"{'/'.join(str(n) for n in config['data']['split_pieces'].values())} train/valid/test pieces; "
          f"options {' '.join(args.train_options) or '(defaults)'}")
    print(f"  {speed:,.0f} training frames/s (median over {len(records)} epochs), {per_epoch:.1f} s an epoch; "
          f"stopped by {config['stopped']} after {records[-1]['seconds'] / 60:.1f} min "
          f"(wall clock {wall / 60:.1f} min with start-up and the final plot)")
    for mark in MARKS_MINUTES:
        if mark > args.minutes:
            break
        done = [r for r in records if r["seconds"] <= mark * 60]
        best = min((r["valid_nll"] for r in done), default=None)
        shown = f"{best:.3f}" if best is not None else "-  (no epoch finished)"
        print(f"  after {mark:>2} min: best valid NLL {shown} ({len(done)} epochs)")


if __name__ == "__main__":
    main()
