"""Do samples look like the data? MusPy's measures (metrics.SAMPLE_MEASURES) of generated pieces
beside the training corpus's, for one run or several side by side (say a Bernoulli and a NADE
model, or a plain and an onset-aware one).

    python bench/sample_quality.py RUN_DIR [RUN_DIR ...] [--pieces 8] [--frames 200] [--seed 0]
    python bench/sample_quality.py RUN_DIR --frames 512 -- --temperature 0.8   # options for sample
    python bench/sample_quality.py RUN_DIR --frames 512 --segment 128   # measured in 128-frame cuts

Samples with the real command line (`seqgate sample --run RUN_DIR -n N --frames F`), reads the
MIDI files back (with their note starts, so re-struck notes count), and compares their statistics
with the training split's, which the run recorded when it trained. The acceptance for a GRU
trained on JSB with the default recipe: mean notes per frame within 25% of the training set's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from seqgate.music.metrics import SAMPLE_MEASURES, format_measure, roll_statistics
from seqgate.data.roll import read_midi_roll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--segment", type=int, help="measure each sample cut into pieces of this many "
                        "frames (say the corpus's piece length), to tell a long sample's key changes "
                        "from its local scale use")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.sample_options = argv[split + 1:]  # further `seqgate sample` options, after --

    # Each run's samples after its training corpus's statistics, as the run recorded them; a
    # corpus column repeats only where they differ (a plain roll derives the notes' starts, an
    # onset-aware one knows the re-strikes, so their note counts and groove differ).
    columns = []
    for run in args.runs:
        corpus = json.loads((run / "config.json").read_text())["data"]["train_stats"]
        name, stats = report(run, args)
        if all(corpus != shown for _, shown in columns):
            columns.append((f"corpus ({name})", corpus))
        columns.append((name, stats))
    width = max(len(name) for name, _ in columns) + 2
    print(f"{'measure':<20}" + "".join(f"{name:>{width}}" for name, _ in columns))
    for key, (heading, _) in SAMPLE_MEASURES.items():
        print(f"{heading:<20}" + "".join(f"{format_measure(stats, key):>{width}}" for _, stats in columns))


def report(run: Path, args) -> tuple[str, dict]:
    config = json.loads((run / "config.json").read_text())
    frames_per_quarter = config["data"]["roll_format"]["frames_per_quarter"] or 1
    train = config["data"]["train_stats"]
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "sample.mid"
        subprocess.run([sys.executable, "-m", "seqgate", "sample", "--run", str(run), "-n", str(args.pieces),
                        "--frames", str(args.frames), "--seed", str(args.seed), "-o", str(output),
                        *args.sample_options],
                       check=True, capture_output=True)
        read = [read_midi_roll(p, frames_per_quarter=frames_per_quarter, onsets=True)
                for p in sorted(Path(folder).glob("sample*.mid"))]
    rolls, struck = [r.roll for r in read], [r.struck for r in read]
    if args.segment:
        # a read-back file ends at its last note, so its last cuts may be short or missing
        rolls, struck = zip(*[(roll[start:start + args.segment], keys[start:start + args.segment])
                              for roll, keys in zip(rolls, struck)
                              for start in range(0, len(roll), args.segment)])
    stats = roll_statistics(rolls, struck, frames_per_quarter)
    gap = abs(stats["mean_notes_per_frame"] - train["mean_notes_per_frame"]) / train["mean_notes_per_frame"]
    model = config["model_config"]
    name = f"{model['cell']}-{model.get('head', 'bernoulli')}" + ("-onsets" if model.get("onsets") else "")
    print(f"{name} ({run}): {len(read)} samples x {args.frames} frames; mean notes per frame "
          f"{stats['mean_notes_per_frame']:.2f}, training set {train['mean_notes_per_frame']:.2f}, "
          f"gap {gap:.0%} ({'within' if gap <= 0.25 else 'OUTSIDE'} 25%)")
    return name, stats


if __name__ == "__main__":
    main()
