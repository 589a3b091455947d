"""Do samples look like the data? Notes per frame and pitch-class entropy of generated pieces beside
the training set's, for one run or several side by side (say a Bernoulli and a NADE model).

    python bench/sample_quality.py RUN_DIR [RUN_DIR ...] [--pieces 8] [--frames 200] [--seed 0]

Samples with the real command line (`seqgate sample --run RUN_DIR -n N --frames F`), reads the
MIDI files back, and compares their statistics with the training split's, which the run recorded
when it trained. The acceptance for a GRU trained on JSB with the default recipe: mean notes per
frame within 25% of the training set's (about 3.9).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from seqgate.metrics import roll_statistics
from seqgate.roll import read_midi_roll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    for run in args.runs:
        report(run, args)


def report(run: Path, args) -> None:
    config = json.loads((run / "config.json").read_text())
    frames_per_quarter = config["data"]["roll_format"]["frames_per_quarter"] or 1
    train = config["data"]["train_stats"]
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "sample.mid"
        subprocess.run([sys.executable, "-m", "seqgate", "sample", "--run", str(run), "-n", str(args.pieces),
                        "--frames", str(args.frames), "--seed", str(args.seed), "-o", str(output)],
                       check=True, capture_output=True)
        paths = sorted(Path(folder).glob("sample*.mid"))
        rolls = [read_midi_roll(p, frames_per_quarter=frames_per_quarter).roll for p in paths]
    stats = roll_statistics(rolls)
    gap = abs(stats["mean_notes_per_frame"] - train["mean_notes_per_frame"]) / train["mean_notes_per_frame"]
    model = config["model_config"]
    print(f"{len(rolls)} samples x {args.frames} frames from {model['cell']} with the "
          f"{model.get('head', 'bernoulli')} head ({run}): mean notes per frame "
          f"{stats['mean_notes_per_frame']:.2f}, training set {train['mean_notes_per_frame']:.2f}, "
          f"gap {gap:.0%} ({'within' if gap <= 0.25 else 'OUTSIDE'} 25%); pitch-class entropy "
          f"{stats['pitch_class_entropy']:.2f} bits, training set {train['pitch_class_entropy']:.2f}")

if __name__ == "__main__":
    main()
