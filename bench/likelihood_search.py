"""Try training configurations on a benchmark corpus and keep every result: the record behind the
README's likelihood tables (issue 23). Each configuration is one `seqgate train` with the options
given, then `seqgate evaluate --json` on train, valid and test; one JSON line per run is appended
to --log, so that a search spread over several invocations keeps one table.

    python bench/likelihood_search.py --dataset jsb --cell gru --params 20000 -- --dropout 0.3
    python bench/likelihood_search.py --dataset nottingham --cell lstm --params 100000 \\
        --recipe big --jobs 2 --seeds 0 1
    python bench/likelihood_search.py --table [--markdown]   # every run logged so far

Choose among configurations by the valid column only; test is printed for the record. Runs use
one thread each, so --jobs 2 fills a 2-core machine. The benchmark .mat files are looked for in
shared/datasets beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seqgate.data.benchmarks import BENCHMARKS, benchmark_by_key

DEFAULT_LOG = Path(__file__).resolve().parent / "results" / "likelihood_search.jsonl"


def seqgate(*args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "seqgate", *args], cwd=cwd, text=True,
                            capture_output=True, env=env)
    if result.returncode != 0:
        sys.exit(f"seqgate {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def prepared(dataset: str, workdir: Path) -> Path:
    benchmark = benchmark_by_key(dataset)
    path = workdir / f"{dataset}.npz"
    if not path.exists():
        mat = Path(__file__).resolve().parents[2] / "shared" / "datasets" / benchmark.file
        if not mat.is_file():
            sys.exit(f"benchmark file not found: {mat}")
        seqgate("prepare", str(mat), "-o", str(path), cwd=workdir)
    return path


def run_one(dataset: str, cell: str, params: str, recipe: str, seed: int, options: list[str],
            workdir: Path) -> dict:
    name = "-".join([dataset, cell, params, recipe, f"s{seed}", *[o.strip("-") for o in options]])
    run_dir = workdir / "runs" / name.replace("/", "_")
    started = time.perf_counter()
    seqgate("train", "--data", str(prepared(dataset, workdir)), "--cell", cell, "--params", params,
            "--recipe", recipe, "--seed", str(seed), "--max-minutes", "30", "--run-dir", str(run_dir),
            *options, cwd=workdir)
    minutes = (time.perf_counter() - started) / 60
    nll = {split: json.loads(seqgate("evaluate", str(run_dir), "--split", split, "--json", cwd=workdir))["nll"]
           for split in ("train", "valid", "test")}
    config = json.loads((run_dir / "config.json").read_text())
    return dict(dataset=dataset, cell=cell, params=config["parameters"], recipe=recipe, seed=seed,
                options=" ".join(options), epochs=config["epochs"], stopped=config.get("stopped", ""),
                minutes=round(minutes, 2), run=str(run_dir.relative_to(workdir)), **{k: round(v, 4) for k, v in nll.items()})


def print_table(log: Path, markdown: bool = False) -> None:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    if markdown:
        print("| corpus | cell | params | recipe | options | epochs | minutes | train / valid / test |")
        print("|---|---|---:|---|---|---:|---:|---|")
        for r in rows:
            options = f"`{r['options']}`" if r["options"] else ""
            print(f"| {r['dataset']} | {r['cell']} | {r['params']:,} | {r['recipe']} | {options} | {r['epochs']} | "
                  f"{r['minutes']:.1f} | {r['train']:.3f} / {r['valid']:.3f} / {r['test']:.3f} |")
        return
    print(f"{'corpus':10} {'cell':5} {'params':>7} {'recipe':8} {'seed':>4} {'options':44} {'epochs':>6} "
          f"{'min':>5}  {'train':>6} {'valid':>6} {'test':>6}")
    for r in rows:
        print(f"{r['dataset']:10} {r['cell']:5} {r['params']:>7,} {r['recipe']:8} {r['seed']:>4} "
              f"{r['options'][:44]:44} {r['epochs']:>6} {r['minutes']:>5.1f}  {r['train']:>6.3f} "
              f"{r['valid']:>6.3f} {r['test']:>6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=[b.key for b in BENCHMARKS], default="jsb")
    parser.add_argument("--cell", nargs="+", default=["gru"])
    parser.add_argument("--params", default="20000")
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "seqgate-search")
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--table", action="store_true", help="print the logged runs and stop")
    parser.add_argument("--markdown", action="store_true", help="with --table: as a Markdown table")
    parser.add_argument("options", nargs="*", help="further `seqgate train` options, after --")
    args = parser.parse_args()
    if args.table:
        print_table(args.log, args.markdown)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    prepared(args.dataset, args.workdir)
    plan = [(cell, seed) for cell in args.cell for seed in args.seeds]

    def job(item):
        row = run_one(args.dataset, item[0], args.params, args.recipe, item[1], args.options, args.workdir)
        with open(args.log, "a") as log:
            log.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        return row

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(job, plan))


if __name__ == "__main__":
    main()
