"""Write the bundled sample corpus: Bach chorales from music21's corpus as MIDI files.

The four-part chorales of J. S. Bach (the 371 of Riemenschneider's edition, the source of the JSB
chorales benchmark of Boulanger-Lewandowski et al. 2012 that Chung et al. 2014 train on) are public
domain, and music21 ships them as MusicXML in its offline corpus. This script picks chorales spread
evenly over Riemenschneider's numbering, keeps those with exactly four voices and well-formed
repeats, and writes each as a MIDI file with one track per voice (soprano, alto, tenor, bass) into
sample_midi/, plus sample_midi/SOURCE.md listing what was written.

music21 is a development dependency only (`pip install -e .[dev]`); seqgate itself never needs it.
The output is deterministic: the same music21 corpus gives the same files, byte for byte.

    python scripts/make_sample_midi.py            # 50 chorales into sample_midi/
    python scripts/make_sample_midi.py --count 40 --qpm 80 --out sample_midi
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqgate.files import atomic_write, write_text_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "sample_midi"
RIEMENSCHNEIDER_COUNT = 371
VOICES = 4
# The scores carry no tempo of Bach's; music21 would write 120 quarters per minute. Chorales are
# sung slower, and the roll follows the beat, not the clock, so this only matters for listening.
DEFAULT_QPM = 80


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="number of chorales (default 50)")
    parser.add_argument("--qpm", type=float, default=DEFAULT_QPM,
                        help=f"tempo in quarter notes per minute (default {DEFAULT_QPM})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: sample_midi/ of this repository)")
    options = parser.parse_args(argv)
    try:
        from music21 import corpus  # noqa: F401  (only checking it is there)
    except ImportError:
        print("music21 is needed to regenerate the samples: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    if not 1 <= options.count <= 300:
        print("--count must be between 1 and 300", file=sys.stderr)
        return 2

    written = write_chorales(options.count, options.qpm, options.out)
    write_source_note(options.out, written, options.count, options.qpm)
    total = sum((options.out / entry["file"]).stat().st_size for entry in written)
    print(f"wrote {len(written)} chorales to {options.out} ({total / 1024:.0f} KiB)")
    return 0


def chorale_catalogue() -> list[tuple[int, str, str]]:
    """(Riemenschneider number, corpus name like 'bach/bwv26.6', title), each corpus file once.

    A few chorales appear twice in the edition under different numbers; the first number is kept.
    """
    from music21.corpus import chorales

    by_number = chorales.ChoraleListRKBWV().byRiemenschneider
    catalogue, seen = [], set()
    for number in sorted(by_number):
        name = "bach/bwv" + by_number[number]["bwv"]
        if name not in seen:
            seen.add(name)
            catalogue.append((number, name, by_number[number]["title"]))
    return catalogue


def write_chorales(count: int, qpm: float, out: Path) -> list[dict]:
    """Convert `count` chorales spread evenly over the catalogue; a rejected one (not four voices,
    unreadable) is replaced by the next acceptable chorale in the catalogue."""
    catalogue = chorale_catalogue()
    chosen_positions: set[int] = set()
    written = []
    for slot in range(count):
        position = slot * len(catalogue) // count
        while position < len(catalogue):
            if position not in chosen_positions:
                number, name, title = catalogue[position]
                result = convert(name, qpm)
                if isinstance(result, str):
                    print(f"skipped {name}: {result}", file=sys.stderr)
                else:
                    chosen_positions.add(position)
                    midi_bytes, repeats = result
                    file_name = name.split("/")[-1] + ".mid"
                    with atomic_write(out / file_name, "wb") as handle:
                        handle.write(midi_bytes)
                    written.append({"file": file_name, "number": number, "title": title,
                                    "repeats": repeats})
                    break
            position += 1
    # Leave no chorale of an earlier, different selection behind.
    keep = {entry["file"] for entry in written}
    for stale in out.glob("bwv*.mid"):
        if stale.name not in keep:
            stale.unlink()
    return sorted(written, key=lambda entry: entry["number"])


def convert(name: str, qpm: float) -> tuple[bytes, str] | str:
    """(MIDI bytes, how repeats were handled) for one chorale, or why it was skipped."""
    from music21 import corpus, midi, repeat, tempo

    try:
        score = corpus.parse(name)
    except Exception as error:  # music21 raises many types for a file it cannot read
        return f"cannot parse ({type(error).__name__}: {error})"
    if len(score.parts) != VOICES:
        return f"{len(score.parts)} parts, not {VOICES}"
    # music21 writes repeated sections out when it exports MIDI (as sung: twice).
    repeats = "written out" if score.flatten().getElementsByClass("RepeatMark") else "none"
    # One tempo for all: a few scores carry an encoder's "playback only" mark, which is no more
    # Bach's than music21's default.
    for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
        mark.activeSite.remove(mark)
    score.insert(0, tempo.MetronomeMark(number=qpm))
    try:
        midi_file = midi.translate.streamToMidiFile(score)
    except repeat.ExpanderException:
        return "repeats music21 cannot expand"
    return midi_file.writestr(), repeats


def write_source_note(out: Path, written: list[dict], count: int, qpm: float) -> None:
    qpm_text = f"{qpm:g}"
    lines = [
        "# Sample corpus: Bach chorales",
        "",
        f"{len(written)} four-part chorales by Johann Sebastian Bach (1685-1750), as MIDI files.",
        "",
        "- **Source**: the Bach chorales bundled with [music21](https://www.music21.org/)'s",
        "  corpus (MusicXML, `music21.corpus`, folder `bach/`), numbered as in Riemenschneider's",
        "  edition of the 371 chorales. The same chorales make up the JSB chorales benchmark",
        "  (Boulanger-Lewandowski et al. 2012) used by Chung et al. 2014.",
        "- **License**: the music is in the public domain (the composer died in 1750).",
        "- **Selection**: spread evenly over Riemenschneider's numbering; a chorale that is not",
        "  exactly four voices, or whose repeats music21 cannot expand, is replaced by the next",
        "  one in the numbering.",
        f"- **Conversion**: one MIDI track per voice (soprano, alto, tenor, bass), tempo {qpm_text}",
        "  quarter notes per minute throughout (Bach gave none), repeated sections written out.",
        "",
        "Regenerate (needs the dev extra, `pip install -e '.[dev]'`; the output is deterministic):",
        "",
        "```",
        f"python scripts/make_sample_midi.py --count {count} --qpm {qpm_text}",
        "```",
        "",
        "| file | Riemenschneider no. | title | repeats |",
        "|---|---|---|---|",
    ]
    for entry in written:
        lines.append(f"| {entry['file']} | {entry['number']} | {entry['title'] or '-'} "
                     f"| {entry['repeats']} |")
    write_text_atomic(out / "SOURCE.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
