"""Peak memory of `seqgate prepare` and `seqgate train --max-epochs 1` on a large MIDI corpus.

    python bench/memory_scale.py make BIG --copies 1000     # 50 chorales x 1,000 = 50,000 files
    python bench/memory_scale.py make SMALL --copies 100    # ten times smaller
    python bench/memory_scale.py measure BIG SMALL           # prepare, then one epoch of training,
                                                             # on each; then the prepare peaks' ratio
    python bench/memory_scale.py measure BIG --onsets        # the same with onset-aware rolls
    python bench/memory_scale.py measure BIG SMALL --no-train  # prepare only

`make` writes the bundled chorales again and again, each copy transposed by one of -5..+6
semitones (symusic), so every file is its own piece. `measure` runs the real commands in a
subprocess that reports its own peak resident memory (VmHWM, Linux) and that of its largest child
(a parser worker, getrusage), then prints frames, the dataset file's size and bytes per frame. The frames per
quarter default to 4 so that 50,000 chorales make over 10 million frames. Training uses the
Bernoulli head by default (--head nade for the NADE): an epoch of 10 million frames takes minutes
with it and hours of CPU with the NADE, and the memory in question is the data's, not the head's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from seqgate.data.prepare import bundled_corpus_dir

# Runs one seqgate command in this interpreter and prints the peaks as JSON on the last line.
MEASURED = """
import json, resource, sys
from seqgate.cli import main
sys.argv = ["seqgate", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as stop:
    code = stop.code or 0
# VmHWM is this process's own high-water mark; ru_maxrss would also count what the launching
# process held before exec (Linux carries it across exec).
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"self_kb": hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "child_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "code": code}))
"""


def make(folder: Path, copies: int) -> None:
    import symusic

    sources = sorted(bundled_corpus_dir().glob("*.mid"))
    folder.mkdir(parents=True, exist_ok=True)
    scores = {(path, shift): symusic.Score(str(path)).shift_pitch(shift)
              for path in sources for shift in range(-5, 7)}
    written = 0
    for copy in range(copies):
        sub = folder / f"{copy // 100:04d}"
        sub.mkdir(exist_ok=True)
        for index, path in enumerate(sources):
            shift = (copy + index) % 12 - 5
            scores[(path, shift)].dump_midi(str(sub / f"{path.stem}-{copy}.mid"))
            written += 1
    print(f"wrote {written:,} MIDI files under {folder}")


def run(*args: str, cwd: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURED, *args], cwd=cwd, text=True,
                            capture_output=True)
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    if peaks["code"] != 0:
        sys.exit(f"seqgate {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return peaks


def measure(folder: Path, frames_per_quarter: int, head: str, onsets: bool = False, train: bool = True) -> float:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        prepared = run("prepare", str(folder.resolve()), "-o", "data.npz", "-f", str(frames_per_quarter),
                       *(["--onsets"] if onsets else []), cwd=work)
        from seqgate.data.dataset import load_dataset

        dataset = load_dataset(work / "data.npz")
        frames, files, size = int(dataset.lengths.sum()), len(dataset), (work / "data.npz").stat().st_size
        del dataset
        trained = run("train", "--data", "data.npz", "--max-epochs", "1", "--head", head,
                      "--run-dir", "run", cwd=work) if train else None
    mb = 1024.0
    print(f"{folder.name}: {files:,} pieces, {frames:,} frames, dataset file {size / 1e6:.1f} MB "
          f"({size / frames:.2f} bytes a frame)")
    print(f"  seqgate prepare -f {frames_per_quarter}{' --onsets' if onsets else ''}: peak resident {prepared['self_kb'] / mb:,.0f} MB "
          f"({prepared['self_kb'] * 1024 / frames:.1f} bytes a frame), largest parser worker "
          f"{prepared['child_kb'] / mb:,.0f} MB")
    if trained is not None:
        print(f"  seqgate train --max-epochs 1 --head {head}: peak resident {trained['self_kb'] / mb:,.0f} MB "
              f"({trained['self_kb'] * 1024 / frames:.1f} bytes a frame)")
    return prepared["self_kb"] / mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make", help="write the corpus")
    made.add_argument("folder", type=Path)
    made.add_argument("--copies", type=int, default=1000)
    measured = commands.add_parser("measure", help="prepare and train on it, printing peak memory")
    measured.add_argument("folders", type=Path, nargs="+")
    measured.add_argument("--frames-per-quarter", type=int, default=4)
    measured.add_argument("--head", default="bernoulli")
    measured.add_argument("--onsets", action="store_true", help="prepare --onsets (and train on that)")
    measured.add_argument("--no-train", action="store_true", help="measure prepare only")
    args = parser.parse_args()
    if args.command == "make":
        make(args.folder, args.copies)
    else:
        peaks = [measure(folder, args.frames_per_quarter, args.head, args.onsets, not args.no_train)
                 for folder in args.folders]
        for folder, peak in zip(args.folders[1:], peaks[1:]):
            print(f"prepare peak on {args.folders[0].name} / on {folder.name}: {peaks[0] / peak:.2f}")


if __name__ == "__main__":
    main()
