"""Write real music as MIDI for benchmarks: scores from music21's corpus other than Bach chorales.

    python bench/make_corpus_midi.py OUT_FOLDER --count 300

The bundled corpus is 50 short four-part chorales; prepare_speed.py also needs real music of other
shapes. This takes every score of the listed composers (Mozart and Haydn string quartets,
Schumann, Monteverdi madrigals, Josquin, trecento pieces and the rest), then fills up to --count
with Palestrina mass movements spread over that collection, and writes each with music21's MIDI
writer: one track per part, 1-8 parts, from a few bars to whole quartet movements. Scores music21
cannot convert are skipped and counted. music21 is a development dependency (`pip install -e .[dev]`).
The output is deterministic: the same music21 corpus gives the same files.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from seqgate.files import atomic_write

# Composers whose every score is taken; Palestrina (about 1,300 movements) only fills up the count.
# Beethoven's quartets are left out: music21 takes minutes over each movement.
COMPOSERS = ("mozart", "haydn", "schumann_robert", "schumann_clara", "monteverdi", "josquin",
             "trecento", "corelli", "handel", "schubert", "chopin", "joplin", "verdi", "weber", "cpebach")
FILLER = "palestrina"


def corpus_scores(count: int) -> list[tuple[str, Path]]:
    """(composer, score path) for up to `count` scores: COMPOSERS whole, then FILLER spread out."""
    from music21 import corpus

    by_composer: dict[str, list[Path]] = {}
    for path in sorted(corpus.getCorePaths()):
        composer = path.parts[path.parts.index("corpus") + 1]
        by_composer.setdefault(composer, []).append(path)
    chosen = [(composer, path) for composer in COMPOSERS for path in by_composer.get(composer, [])][:count]
    filler = by_composer.get(FILLER, [])
    wanted = count - len(chosen)
    if wanted > 0 and filler:
        step = max(1, len(filler) // wanted)
        chosen += [(FILLER, path) for path in filler[::step][:wanted]]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=300)
    options = parser.parse_args()
    try:
        from music21 import converter
    except ImportError:
        print("music21 is needed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    from music21.midi.translate import music21ObjectToMidiFile

    options.out.mkdir(parents=True, exist_ok=True)
    written, failed, started = 0, 0, time.perf_counter()
    scores = corpus_scores(options.count)
    for number, (composer, path) in enumerate(scores, 1):
        name = f"{composer}-{path.stem}-{number:03d}.mid"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # music21 warns about many scores' details
                score = converter.parse(path)
                if hasattr(score, "scores"):  # an Opus (several pieces in one file): take the first
                    score = score.scores[0]
                midi = music21ObjectToMidiFile(score)
                data = midi.writestr()
        except Exception as error:  # noqa: BLE001  (any score music21 cannot turn into MIDI is skipped)
            failed += 1
            print(f"skipped {path.name}: {type(error).__name__}", file=sys.stderr)
            continue
        with atomic_write(options.out / name) as handle:
            handle.write(data)
        written += 1
        if number % 25 == 0:
            print(f"{number}/{len(scores)} scores, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    size = sum(p.stat().st_size for p in options.out.glob("*.mid"))
    print(f"wrote {written} MIDI files to {options.out} ({size / 1024:.0f} KiB), {failed} scores skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
