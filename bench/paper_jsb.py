"""Train tanh, GRU and LSTM at the paper's size and print test NLL beside Chung et al. 2014, Table 2.

    python bench/paper_jsb.py                       # JSB Chorales, the acceptance run
    python bench/paper_jsb.py --dataset nottingham  # the same settings on Nottingham

Runs the real command line, as a user would: `seqgate prepare FILE.mat`, then for each cell
`seqgate train --cell CELL --params 20000` with every other option at its default, then
`seqgate evaluate --json` on train and test. NLL is nats per frame, frames weighted equally.
The benchmark .mat files are looked for in shared/datasets beside the repository (or --mat).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seqgate.benchmarks import BENCHMARKS, benchmark_by_key


def seqgate(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "seqgate", *args], cwd=cwd, text=True,
                            capture_output=True)
    if result.returncode != 0:
        sys.exit(f"seqgate {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=[b.key for b in BENCHMARKS], default="jsb")
    parser.add_argument("--mat", type=Path, help="the benchmark .mat file (default: shared/datasets)")
    parser.add_argument("--cells", nargs="+", default=["tanh", "gru", "lstm"])
    parser.add_argument("--params", default="20000")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--train-option", action="append", default=[],
                        help="extra option for `seqgate train`, e.g. --train-option=--max-minutes=5")
    args = parser.parse_args()

    benchmark = benchmark_by_key(args.dataset)
    mat = args.mat or Path(__file__).resolve().parents[2] / "shared" / "datasets" / benchmark.file
    if not mat.is_file():
        sys.exit(f"benchmark file not found: {mat} (give --mat)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="seqgate-paper-"))
    workdir.mkdir(parents=True, exist_ok=True)
    seqgate("prepare", str(mat.resolve()), "-o", "data.npz", cwd=workdir)

    rows = []
    for cell in args.cells:
        run_dir = workdir / "runs" / f"{cell}-seed{args.seed}"
        started = time.perf_counter()
        seqgate("train", "--cell", cell, "--params", args.params, "--data", "data.npz", "--seed", args.seed,
                "--run-dir", str(run_dir), *args.train_option, cwd=workdir)
        minutes = (time.perf_counter() - started) / 60
        scores = {split: json.loads(seqgate("evaluate", str(run_dir), "--split", split, "--json", cwd=workdir))
                  for split in ("train", "test")}
        config = json.loads((run_dir / "config.json").read_text())
        rows.append((cell, config, scores, minutes))

    paper = benchmark.paper
    print(f"{args.dataset}: seqgate defaults, --params {args.params}, seed {args.seed}, "
          f"device {rows[0][1]['device'] if rows else '-'}; NLL in nats per frame (train / test)")
    print(f"{'cell':6} {'params':>7} {'hidden':>6} {'epochs':>6} {'minutes':>7}  "
          f"{'seqgate train/test':>19}  {'paper train/test':>17}  {'test <= paper':>13}")
    for cell, config, scores, minutes in rows:
        paper_train, paper_test = paper[cell]
        ok = "yes" if scores["test"]["nll"] <= paper_test else "NO"
        print(f"{cell:6} {config['parameters']:>7,} {config['model_config']['hidden']:>6} {config['epochs']:>6} "
              f"{minutes:>7.1f}  {scores['train']['nll']:>9.3f} / {scores['test']['nll']:<7.3f}  "
              f"{paper_train:>8.2f} / {paper_test:<6.2f}  {ok:>13}")


if __name__ == "__main__":
    main()
