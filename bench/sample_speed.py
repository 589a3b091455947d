"""How fast `seqgate sample` generates: 8 pieces x 1,000 frames from a ~20k-parameter GRU on CPU.

The random model's output bias starts at a key frequency of 0.04 (about 3.5 keys a frame, as in
JSB), which matters for the NADE head: its draws cost one pass per sounding key.

The floor is 1 second (best of 5 after a warm-up call). Generation carries the recurrent state, so
the time is linear in frames; what this measures is the per-step overhead of seqgate/sample.py.

    python bench/sample_speed.py                 # random-weight GRU sized by a 20k budget
    python bench/sample_speed.py --head nade     # the same budget with a NADE head
    python bench/sample_speed.py --run runs/NAME # a trained run's best.pt instead
"""

from __future__ import annotations

import argparse
import time

import torch

from seqgate.model.network import NextStepModel
from seqgate.model.sizing import hidden_for_params
from seqgate.training.runs import load_model
from seqgate.training.runs import open_run
from seqgate.music.sample import generate
from seqgate.settings import DEFAULT_HEAD, DEFAULT_PARAMS

FLOOR_SECONDS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run folder (or best.pt) to load instead of random weights")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--head", default=DEFAULT_HEAD, help="head of the random model (bernoulli, nade)")
    args = parser.parse_args()

    if args.run:
        model, _ = load_model(open_run(args.run).checkpoint_path("best.pt"))
    else:
        torch.manual_seed(0)
        model = NextStepModel("gru", hidden_for_params("gru", DEFAULT_PARAMS, head=args.head), head=args.head)
        model.init_output_bias(torch.full((model.n_keys,), 0.04))  # about 3.5 keys a frame, as JSB
    generate(model, args.pieces, args.frames, seed=0)  # warm-up: first-call allocations
    best = float("inf")
    for repeat in range(args.repeats):
        start = time.perf_counter()
        generate(model, args.pieces, args.frames, seed=repeat)
        best = min(best, time.perf_counter() - start)
    frames_per_second = args.pieces * args.frames / best
    verdict = "ok" if best <= FLOOR_SECONDS else f"SLOWER than the {FLOOR_SECONDS:g} s floor"
    print(f"sample speed: {args.pieces} x {args.frames:,} frames, {model.cell} hidden {model.hidden}, "
          f"{model.head_name} head{f' of {model.head_size} units' if model.head_size else ''} "
          f"({model.n_parameters():,} params), {torch.get_num_threads()} CPU threads: "
          f"{best:.3f} s best of {args.repeats}, {frames_per_second:,.0f} frames/s ({verdict})")


if __name__ == "__main__":
    main()
