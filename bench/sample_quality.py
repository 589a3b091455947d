"""Do samples look like the data? Mean notes per frame of generated pieces beside the training set's.

    python bench/sample_quality.py RUN_DIR [--pieces 8] [--frames 200] [--seed 0]

Samples with the real command line (`seqgate sample --run RUN_DIR -n N --frames F`), reads the
MIDI files back, and compares their mean notes per frame with the training split's, which the run
recorded when it trained. The acceptance for a GRU trained on JSB with the default recipe: within
25% of the training set's (about 3.9).
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
    parser.add_argument("run", type=Path)
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = json.loads((args.run / "config.json").read_text())
    frames_per_quarter = config["data"]["roll_format"]["frames_per_quarter"] or 1
    train_mean = config["data"]["train_stats"]["mean_notes_per_frame"]
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "sample.mid"
        subprocess.run([sys.executable, "-m", "seqgate", "sample", "--run", str(args.run), "-n", str(args.pieces),
                        "--frames", str(args.frames), "--seed", str(args.seed), "-o", str(output)],
                       check=True, capture_output=True)
        paths = sorted(Path(folder).glob("sample*.mid"))
        rolls = [read_midi_roll(p, frames_per_quarter=frames_per_quarter).roll for p in paths]
    sample_mean = roll_statistics(rolls)["mean_notes_per_frame"]
    gap = abs(sample_mean - train_mean) / train_mean
    print(f"{len(rolls)} samples x {args.frames} frames from {config['model_config']['cell']} "
          f"({config['run_dir']}): mean notes per frame {sample_mean:.2f}, training set {train_mean:.2f}, "
          f"gap {gap:.0%} ({'within' if gap <= 0.25 else 'OUTSIDE'} 25%)")


if __name__ == "__main__":
    main()
