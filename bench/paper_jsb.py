"""Train tanh, GRU and LSTM at the paper's size, with each output head, and print test NLL beside
Chung et al. 2014, Table 2 and RNN-NADE (Boulanger-Lewandowski et al. 2012).

    python bench/paper_jsb.py                                  # JSB Chorales, both heads
    python bench/paper_jsb.py --dataset nottingham --jobs 2    # Nottingham, two runs at a time
    python bench/paper_jsb.py --heads bernoulli                # the paper's model only

Runs the real command line, as a user would: `seqgate prepare FILE.mat`, then for each head and
cell `seqgate train --cell CELL --head HEAD --params 20000` with every other option at its
default, then `seqgate evaluate --json` on train and test. NLL is nats per frame, frames weighted
equally. With --jobs 2 two runs train at once, each on one thread (as a small model trains
anyway), so the minutes are those of a busy machine. The benchmark .mat files are looked for in
shared/datasets beside the repository (or --mat).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seqgate.data.benchmarks import BENCHMARKS, benchmark_by_key
from seqgate.model.heads import HEADS

RNN_NADE = "RNN-NADE (Boulanger-Lewandowski 2012)"


def seqgate(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "seqgate", *args], cwd=cwd, text=True,
                            capture_output=True)
    if result.returncode != 0:
        sys.exit(f"seqgate {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def train_and_evaluate(head: str, cell: str, args, workdir: Path) -> tuple:
    run_dir = workdir / "runs" / f"{cell}-{head}-seed{args.seed}"
    started = time.perf_counter()
    seqgate("train", "--cell", cell, "--head", head, "--params", args.params, "--data", "data.npz",
            "--seed", args.seed, "--run-dir", str(run_dir), *args.train_option, cwd=workdir)
    minutes = (time.perf_counter() - started) / 60
    scores = {split: json.loads(seqgate("evaluate", str(run_dir), "--split", split, "--json", cwd=workdir))
              for split in ("train", "valid", "test")}
    config = json.loads((run_dir / "config.json").read_text())
    return head, cell, config, scores, minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=[b.key for b in BENCHMARKS], default="jsb")
    parser.add_argument("--mat", type=Path, help="the benchmark .mat file (default: shared/datasets)")
    parser.add_argument("--cells", nargs="+", default=["tanh", "gru", "lstm"])
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--params", default="20000")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
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

    plan = [(head, cell) for head in args.heads for cell in args.cells]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda job: train_and_evaluate(*job, args, workdir), plan))

    print(f"{benchmark.name}: seqgate defaults, --params {args.params}, seed {args.seed}, "
          f"device {rows[0][2]['device'] if rows else '-'}, {args.jobs} run(s) at a time; "
          f"NLL in nats per frame, all frames")
    print(f"{'head':9} {'cell':5} {'params':>7} {'sizes':>6} {'epochs':>6} {'min':>5}  "
          f"{'train':>6} {'valid':>6} {'test':>6}  {'paper train/test':>16}  {'test <= paper':>13}")
    for head, cell, config, scores, minutes in rows:
        paper_train, paper_test = benchmark.paper[cell]
        model = config["model_config"]
        sizes = f"{model['hidden']}" + (f"+{model['head_size']}" if model.get("head_size") else "")
        ok = "yes" if scores["test"]["nll"] <= paper_test else "NO"
        print(f"{head:9} {cell:5} {config['parameters']:>7,} {sizes:>6} {config['epochs']:>6} "
              f"{minutes:>5.1f}  {scores['train']['nll']:>6.3f} {scores['valid']['nll']:>6.3f} "
              f"{scores['test']['nll']:>6.3f}  {paper_train:>7.2f} / {paper_test:<6.2f}  {ok:>13}")
    if RNN_NADE in benchmark.published:
        print(f"{RNN_NADE}, test: {benchmark.published[RNN_NADE]}")


if __name__ == "__main__":
    main()
