"""In which keys are the benchmark corpora's pieces? (Before transposing them to augment training.)

    python bench/benchmark_keys.py                  # JSB Chorales and Nottingham from shared/datasets
    python bench/benchmark_keys.py --mat PATH.mat

For each split, counts the pieces by the scale their sounding notes fit best (metrics.SCALES, the
12 major and 12 natural minor scales; a minor scale is counted under its relative major, whose
notes it shares: C minor under Eb). A corpus whose pieces mostly fit one or two scales was
transposed to a common key by its publishers, and random transposition would train the model on
keys its test split never uses.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from seqgate.data.benchmarks import benchmark_by_key, read_benchmark
from seqgate.data.dataset import SPLITS
from seqgate.data.roll import LOWEST_PITCH
from seqgate.music.metrics import PITCH_CLASSES, SCALES

NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def major_tonic_of_best_scale(pitches: np.ndarray, frame_counts: np.ndarray) -> int:
    """The major tonic of the scale that holds most of a piece's sounding notes (note-frames)."""
    histogram = np.bincount((pitches.astype(np.int64) + LOWEST_PITCH) % PITCH_CLASSES, minlength=PITCH_CLASSES)
    best = int(np.argmax(SCALES.astype(float) @ histogram))
    major, tonic = best < PITCH_CLASSES, best % PITCH_CLASSES
    return tonic if major else (tonic + 3) % PITCH_CLASSES  # a minor scale's relative major


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mat", type=Path, action="append",
                        help="benchmark .mat file (default: JSB and Nottingham in shared/datasets)")
    args = parser.parse_args()
    paths = args.mat or [SHARED / benchmark_by_key(key).file for key in ("jsb", "nottingham")]
    for path in paths:
        dataset, _ = read_benchmark(path)
        for split in SPLITS:
            counts = collections.Counter()
            for piece in dataset.indices(split):
                frame_counts, pitches, _ = dataset.window(piece, 0, int(dataset.lengths[piece]))
                counts[NAMES[major_tonic_of_best_scale(pitches, frame_counts)]] += 1
            total = sum(counts.values())
            shown = ", ".join(f"{name} {n} ({n / total:.0%})" for name, n in counts.most_common())
            print(f"{path.name} {split}: {total} pieces by best-fitting scale (major tonic): {shown}")


if __name__ == "__main__":
    main()
