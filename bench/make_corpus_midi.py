"""Write real music as MIDI for benchmarks: scores from music21's corpus other than Bach chorales.

    python bench/make_corpus_midi.py OUT_FOLDER --count 300
    python bench/make_corpus_midi.py OUT_FOLDER --folk --count 300

The bundled corpus is 50 short four-part chorales; prepare_speed.py also needs real music of other
shapes. This takes every score of the listed composers (Mozart and Haydn string quartets,
Schumann, Monteverdi madrigals, Josquin, trecento pieces and the rest), then fills up to --count
with Palestrina mass movements spread over that collection, and writes each with music21's MIDI
writer: one track per part, 1-8 parts, from a few bars to whole quartet movements. Scores music21
cannot convert are skipped and counted. music21 is a development dependency (`pip install -e .[dev]`).
The output is deterministic: the same music21 corpus gives the same files.

--folk writes folk tunes instead, one tune per file: single-line melodies from music21's ABC
collections. First Ryan's Mammoth Collection ('ryansMammoth': 1,059 reels, hornpipes, jigs,
strathspeys and the like, one tune per file), taken spread over the alphabetical list of files,
then, past those, songs of the Essen Folksong Collection ('essenFolksong': mostly German, a few
hundred tunes per file, which music21 reads as an Opus), file by file in order. Each tune is
written as music21 writes it (one track, repeats expanded by music21's MIDI writer), except that
chord symbols ("Am" over the staff), which music21 would write as chords, are dropped, so every
file holds the melody alone, and that a meter the ABC reader shares between bars is copied into
each (music21's MIDI writer fails on it otherwise). Tunes music21 cannot convert (in Ryan's, about
one in forty: repeats it cannot expand) are skipped, counted, and replaced by the next in order,
so --count files are written while the collections last.
"""

from __future__ import annotations

import argparse
import copy
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
# Folk collections in the order they are drawn on; the first alone holds 1,059 tunes.
FOLK = ("ryansMammoth", "essenFolksong")


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


def spread(items: list, wanted: int) -> list:
    """All of `items`: first every step-th so that `wanted` of them span the list, then the rest in order."""
    step = max(1, len(items) // max(1, wanted))
    return items[::step] + [item for index, item in enumerate(items) if index % step]


def folk_tunes(count: int):
    """(collection, tune name, tune score) in a fixed order: FOLK collections' tunes, file by file.

    Files are parsed one at a time, as the tunes are asked for; one that cannot be read at all
    yields (collection, file name, the exception) in place of its tunes.
    """
    from music21 import converter, corpus

    by_collection: dict[str, list[Path]] = {}
    for path in sorted(corpus.getPaths(fileExtensions=["abc"])):
        collection = path.parts[path.parts.index("corpus") + 1]
        by_collection.setdefault(collection, []).append(path)
    for order, collection in enumerate(FOLK):
        paths = by_collection.get(collection, [])
        if order == 0:  # spread the first collection's files so that a small --count spans it
            paths = spread(paths, count)
        for path in paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    parsed = converter.parse(path)
            except Exception as error:  # noqa: BLE001  (a file music21 cannot read is skipped)
                yield collection, path.stem, error
                continue
            tunes = list(parsed.scores) if hasattr(parsed, "scores") else [parsed]
            for number, tune in enumerate(tunes, 1):
                yield collection, path.stem if len(tunes) == 1 else f"{path.stem}-{number:03d}", tune


def tune_midi(tune) -> bytes:
    """A tune as MIDI bytes: music21's MIDI writer on the tune with its chord symbols removed.

    music21's ABC reader puts one TimeSignature object into every bar where a tune goes back to
    an earlier meter, and its MIDI writer then fails on the repeats; each repeat gets a copy.
    """
    from music21.midi.translate import music21ObjectToMidiFile

    seen: set[int] = set()
    for inner in tune.recurse(streamsOnly=True, includeSelf=True):
        inner.removeByClass("Harmony")  # ChordSymbol and the like: written as chords otherwise
        for mark in list(inner.getElementsByClass(("TimeSignature", "KeySignature", "MetronomeMark"))):
            if id(mark) in seen:
                inner.replace(mark, copy.deepcopy(mark))
            seen.add(id(mark))
    return music21ObjectToMidiFile(tune).writestr()


def write_folk(out: Path, count: int) -> tuple[int, int]:
    """Write `count` folk tunes (fewer if the collections run out); (written, skipped)."""
    written, failed, started = 0, 0, time.perf_counter()
    collections: dict[str, int] = {}
    tunes = folk_tunes(count)
    for collection, name, tune in tunes if count > 0 else ():
        try:
            if isinstance(tune, Exception):  # the whole file could not be read
                raise tune
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # music21 warns about many tunes' details
                data = tune_midi(tune)
        except Exception as error:  # noqa: BLE001  (any tune music21 cannot turn into MIDI is skipped)
            failed += 1
            print(f"skipped {collection}/{name}: {type(error).__name__}", file=sys.stderr)
            continue
        written += 1
        with atomic_write(out / f"{collection}-{name}-{written:03d}.mid") as handle:
            handle.write(data)
        collections[collection] = collections.get(collection, 0) + 1
        if written % 25 == 0:
            print(f"{written}/{count} tunes, {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if written == count:
            break
    tunes.close()
    print(", ".join(f"{number} from {collection}" for collection, number in collections.items()), file=sys.stderr)
    return written, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--folk", action="store_true",
                        help="folk tunes (Ryan's Mammoth, then Essen folksongs), one per file")
    options = parser.parse_args()
    try:
        from music21 import converter
    except ImportError:
        print("music21 is needed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    from music21.midi.translate import music21ObjectToMidiFile

    options.out.mkdir(parents=True, exist_ok=True)
    if options.folk:
        written, failed = write_folk(options.out, options.count)
        size = sum(p.stat().st_size for p in options.out.glob("*.mid"))
        print(f"wrote {written} MIDI files to {options.out} ({size / 1024:.0f} KiB), {failed} tunes skipped")
        return 0
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
