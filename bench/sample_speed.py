"""How fast `seqgate sample` generates: 8 pieces x 1,000 frames from a ~20k-parameter GRU on CPU.

The floor is 1 second (best of 5 after a warm-up call). Generation carries the recurrent state, so
the time is linear in frames; what this measures is the per-step overhead of seqgate/sample.py.

    python bench/sample_speed.py                 # random-weight GRU sized by a 20k budget
    python bench/sample_speed.py --run runs/NAME # a trained run's best.pt instead
"""

from __future__ import annotations

import argparse
import time

import torch

from seqgate.model import NextStepModel, hidden_for_params, load_model
from seqgate.runs import open_run
from seqgate.sample import generate
from seqgate.settings import DEFAULT_PARAMS

FLOOR_SECONDS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run folder (or best.pt) to load instead of random weights")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    if args.run:
        model, _ = load_model(open_run(args.run).checkpoint_path("best.pt"))
    else:
        torch.manual_seed(0)
        model = NextStepModel("gru", hidden_for_params("gru", DEFAULT_PARAMS))
    generate(model, args.pieces, args.frames, seed=0)  # warm-up: first-call allocations
    best = float("inf")
    for repeat in range(args.repeats):
        start = time.perf_counter()
        generate(model, args.pieces, args.frames, seed=repeat)
        best = min(best, time.perf_counter() - start)
    frames_per_second = args.pieces * args.frames / best
    verdict = "ok" if best <= FLOOR_SECONDS else f"SLOWER than the {FLOOR_SECONDS:g} s floor"
    print(f"sample speed: {args.pieces} x {args.frames:,} frames, {model.cell} hidden {model.hidden} "
          f"({model.n_parameters():,} params), {torch.get_num_threads()} CPU threads: "
          f"{best:.3f} s best of {args.repeats}, {frames_per_second:,.0f} frames/s ({verdict})")


if __name__ == "__main__":
    main()
