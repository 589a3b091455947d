"""How fast is `seqgate prepare` against a plain pretty_midi loop over the same MIDI files, and how
much of its parser's own speed does it keep?

    python bench/prepare_speed.py FOLDER [--fs 8] [--workers N] [--repeat 3] [--no-pretty-midi]

seqgate: the real command line, end to end, in a subprocess (interpreter start, scan, parser
processes, dataset written), `python -m seqgate prepare FOLDER -o TMP`.
pretty_midi: `pretty_midi.PrettyMIDI(f).get_piano_roll(fs=FS)` for every file, one process, the
usual way to turn MIDI into rolls. Files pretty_midi cannot read count as done for both.
symusic: `symusic.Score(f)` for every file in one process: the parser alone on one core.
seqgate's reading alone: roll.read_midi_batch (what each parser process runs: the parse, the
notes out of symusic, the roll) on chunks of workers.MAX_CHUNK files in one process, no pool and
no command line: the most of the parser's rate any pool around it could keep.

The ratios: seqgate's rate over the parser's rate times the parser processes (all cores by
default), end to end; and the same for the rate past the fixed part, (files) / (time on the
folder - time on one file of it: interpreter start, imports, workers, writing), which is what a
big corpus sees. Every file is read once before anything is timed (page cache), and each side's
best of --repeat runs is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def time_seqgate(folder: Path, workers: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "seqgate", "prepare", str(folder), "-o", str(Path(tmp) / "d.npz")]
        if workers:
            command += ["--workers", str(workers)]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def time_pretty_midi(files: list[Path], fs: float) -> float:
    import pretty_midi

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pretty_midi warns about type-0 files and the like
        for path in files:
            try:
                pretty_midi.PrettyMIDI(str(path)).get_piano_roll(fs=fs)
            except Exception:
                pass
    return time.perf_counter() - start


def time_symusic(files: list[Path]) -> float:
    import symusic

    start = time.perf_counter()
    for path in files:
        try:
            symusic.Score(str(path), ttype="tick")
        except Exception:
            pass
    return time.perf_counter() - start


def time_read_midi_batch(files: list[Path]) -> float:
    from seqgate.data.roll import read_midi_batch
    from seqgate.data.workers import MAX_CHUNK

    paths = [str(path) for path in files]
    start = time.perf_counter()
    for first in range(0, len(paths), MAX_CHUNK):
        read_midi_batch(paths[first:first + MAX_CHUNK])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--fs", type=float, default=8, help="pretty_midi frames per second")
    parser.add_argument("--workers", type=int, default=None, help="seqgate parser processes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pretty-midi", action="store_true", help="skip the (slow) pretty_midi loop")
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        sys.exit(f"no MIDI files under {args.folder}")

    for path in files:
        path.read_bytes()  # into the page cache before anything is timed

    seqgate_s = min(time_seqgate(args.folder, args.workers) for _ in range(args.repeat))
    symusic_s = min(time_symusic(files) for _ in range(args.repeat))
    reading_s = min(time_read_midi_batch(files) for _ in range(args.repeat))
    pretty_s = None if args.no_pretty_midi else min(time_pretty_midi(files, args.fs) for _ in range(args.repeat))
    with tempfile.TemporaryDirectory() as one:
        shutil.copy(files[0], one)
        fixed_s = min(time_seqgate(Path(one), args.workers) for _ in range(args.repeat))
    n = len(files)
    workers = args.workers or os.cpu_count() or 1
    print(f"{n} files, {os.cpu_count()} cores, {workers} parser processes, best of {args.repeat}")
    print(f"seqgate prepare (CLI, end to end):  {seqgate_s:7.2f} s  {n / seqgate_s:8.1f} files/s"
          f"   (the same command on 1 file: {fixed_s:.2f} s)")
    print(f"symusic.Score alone, one process:   {symusic_s:7.2f} s  {n / symusic_s:8.1f} files/s")
    print(f"seqgate's reading alone, one process: {reading_s:5.2f} s  {n / reading_s:8.1f} files/s")
    if pretty_s is not None:
        print(f"pretty_midi get_piano_roll loop:    {pretty_s:7.2f} s  {n / pretty_s:8.1f} files/s")
        print(f"seqgate is {pretty_s / seqgate_s:.1f}x faster")
    print(f"seqgate keeps {symusic_s / seqgate_s / workers:.0%} of the parser's rate x {workers} end to end, "
          f"{symusic_s / max(seqgate_s - fixed_s, 1e-9) / workers:.0%} past the fixed part (floor 60%); "
          f"its reading alone keeps {symusic_s / reading_s:.0%} on one core")


if __name__ == "__main__":
    main()
