"""Seconds an epoch of every cell at equal parameters, with each head: is the GRU the cheaper unit?

    python bench/cell_speed.py                      # JSB Chorales, 20k parameters, 10 epochs each
    python bench/cell_speed.py --data DATA.npz --epochs 3
    python bench/cell_speed.py --heads bernoulli --epochs 30 --repeats 5   # the median of 5 runs a cell
    SEQGATE_COMPILE=0 python bench/cell_speed.py ...   # the GRU on its Python loops, not the compiled ones

Runs the real `seqgate train --cell CELL --head HEAD --params P --max-epochs E` one run at a time
(so each has the machine to itself), and prints each run's seconds an epoch from its config.json
(training and validation, the run's own clock) and, per head, the LSTM's time over each cell's: at
1.0 or above a cell is as cheap as the LSTM. The .mat file is looked for in shared/datasets beside
the repository (or --mat); --data takes a prepared dataset instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from seqgate.data.benchmarks import benchmark_by_key
from seqgate.model.cells import CELLS
from seqgate.model.heads import HEADS


def seqgate(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "seqgate", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"seqgate {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a prepared dataset (default: JSB Chorales)")
    parser.add_argument("--mat", type=Path, help="the JSB .mat file (default: shared/datasets)")
    parser.add_argument("--params", default="20000")
    parser.add_argument("--epochs", default="10")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each cell; the median is printed")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="seqgate-cells-"))
    data = args.data.resolve() if args.data else workdir / "data.npz"
    if not args.data:
        mat = args.mat or Path(__file__).resolve().parents[2] / "shared" / "datasets" / benchmark_by_key("jsb").file
        if not mat.is_file():
            sys.exit(f"benchmark file not found: {mat} (give --mat or --data)")
        seqgate("prepare", str(mat.resolve()), "-o", str(data), cwd=workdir)
    print(f"{data.name}: --params {args.params}, {args.epochs} epochs a run, one run at a time, "
          f"median of {args.repeats}")
    print(f"{'head':9} {'cell':5} {'params':>7} {'s/epoch':>8} {'LSTM/cell':>9}")
    for head in args.heads:
        seconds, parameters = {cell: [] for cell in CELLS}, {}
        for repeat in range(args.repeats):  # cells interleaved, so that a slow spell hits each alike
            for cell in CELLS:
                run = workdir / f"{cell}-{head}-{repeat}"
                seqgate("train", "--cell", cell, "--head", head, "--params", args.params, "--data", str(data),
                        "--max-epochs", args.epochs, "--patience", args.epochs, "--run-dir", str(run), cwd=workdir)
                config = json.loads((run / "config.json").read_text())
                seconds[cell].append(config["seconds"] / config["epochs"])
                parameters[cell] = config["parameters"]
        seconds = {cell: (statistics.median(times), parameters[cell]) for cell, times in seconds.items()}
        for cell, (per_epoch, parameters) in seconds.items():
            print(f"{head:9} {cell:5} {parameters:>7,} {per_epoch:>8.3f} {seconds['lstm'][0] / per_epoch:>9.2f}")


if __name__ == "__main__":
    main()
