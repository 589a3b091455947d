"""How fast `metrics.roll_statistics` describes a corpus: 200 random pieces x 850 frames x 88 keys.

170,000 frames is about the size of the Nottingham or Piano-midi corpora; metrics.py claims whole
datasets take a fraction of a second, so the floor is 1 second (best of 5 after a warm-up call).
This used to be a wall-time assertion in tests/test_metrics.py, where a busy machine failed it.

    python bench/metrics_speed.py [--pieces 200] [--frames 850] [--density 0.04] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from seqgate.music.metrics import roll_statistics

FLOOR_SECONDS = 1.0
N_KEYS = 88


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=200)
    parser.add_argument("--frames", type=int, default=850, help="frames per piece")
    parser.add_argument("--density", type=float, default=0.04, help="chance a key sounds")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    generator = np.random.default_rng(0)
    rolls = [generator.random((args.frames, N_KEYS)) < args.density for _ in range(args.pieces)]
    roll_statistics(rolls)  # warm-up: first-call allocations
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        roll_statistics(rolls)
        best = min(best, time.perf_counter() - start)
    frames = args.pieces * args.frames
    verdict = "ok" if best <= FLOOR_SECONDS else f"SLOWER than the {FLOOR_SECONDS:g} s floor"
    print(f"metrics speed: {args.pieces} x {args.frames:,} frames ({frames:,}, density "
          f"{args.density:g}): {best:.3f} s best of {args.repeats}, {frames / best:,.0f} frames/s "
          f"({verdict})")


if __name__ == "__main__":
    main()
