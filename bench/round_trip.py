"""How many notes survive MIDI -> roll -> MIDI, with and without onsets.

    python bench/round_trip.py FOLDER [FOLDER ...] [--fs 2]

For every MIDI file: the notes seqgate reads (non-drum, on the 88 keys), the notes left after the
roll is written back as MIDI and read again, once from a plain roll (a key sounding in
consecutive frames is one note) and once from the onset-aware roll of `prepare --onsets`, and
what the grid itself forces: the distinct (key, start frame) pairs, since two notes of one key
that start in the same frame cannot stay apart on any grid of that step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from seqgate.data.prepare import find_midi_files
from seqgate.data.roll import BadMidi, on_keyboard, read_midi_roll, roll_to_midi

def source_notes(path: str) -> int:
    """The notes `prepare` keeps of a file: non-drum notes on the 88 keys."""
    import symusic

    total = 0
    for track in symusic.Score(path, ttype="tick").tracks:
        if not track.is_drum:
            pitch = track.notes.numpy()["pitch"]
            total += int(on_keyboard(pitch).sum())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--fs", type=int, default=2, help="frames per quarter note (default 2)")
    args = parser.parse_args()

    files = find_midi_files(args.folders)
    totals = np.zeros(4, dtype=np.int64)  # source, plain round trip, onset round trip, grid-forced
    used = 0
    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "back.mid"
        for i in range(len(files)):
            path = files.path(i)
            try:
                aware = read_midi_roll(path, frames_per_quarter=args.fs, onsets=True)
                grid = int(aware.struck.sum())  # one struck cell per (key, start frame) pair
            except BadMidi:
                continue
            counts = [source_notes(path)]
            for struck in (None, aware.struck):
                roll_to_midi(aware.roll, written, frames_per_quarter=args.fs, struck=struck)
                counts.append(source_notes(str(written)))
            totals += counts + [grid]
            used += 1
    source, plain, onsets, grid = totals.tolist()
    print(f"{used} files at {args.fs} frames per quarter: {source:,} notes")
    print(f"  plain roll:        {plain:,} notes back, {source - plain:,} lost ({(source - plain) / source:.1%})")
    print(f"  with --onsets:     {onsets:,} notes back, {source - onsets:,} lost ({(source - onsets) / source:.1%})")
    print(f"  the grid forces:   {grid:,} distinct (key, start frame) pairs, {source - grid:,} notes "
          f"({(source - grid) / source:.1%}) share a start frame with another note of their key")
    print(f"  onsets keep every note the grid can hold: {'yes' if onsets == grid else 'NO'}")
    sys.exit(0 if onsets == grid else 1)


if __name__ == "__main__":
    main()
