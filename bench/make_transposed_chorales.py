"""Write a benchmark corpus of MIDI: every Bach chorale in music21's corpus, in all 12 keys.

    python bench/make_transposed_chorales.py OUT_FOLDER
    python bench/make_transposed_chorales.py OUT_FOLDER --qpm 80 --valid 0.1 --test 0.1

The bundled corpus (50 chorales) is too small to time training at scale; this writes a corpus of
the same kind of music big enough for that (about 4,000 files, over 500,000 training frames at
seqgate's default 2 frames per quarter note). It takes every score under music21's corpus folder
bach/ (the 371 chorales of Riemenschneider's edition and the other chorale settings music21 ships;
the Roman-numeral analyses, .rntxt, are not scores and are left out), keeps the four-voice ones
whose repeats music21 can expand, converts each once with music21's MIDI writer (one track per
voice, repeats written out, one tempo throughout) and writes it transposed by each of -5..+6
semitones with mido, key signatures moved along. A score of exactly four parts is taken whole; a
cantata setting with instruments beside the choir (horns, trumpets and timpani, an obbligato
violin, the continuo: about forty of them) is taken as its four vocal parts, the parts named
Soprano, Alto, Tenor and Bass, one each, as the JSB chorales benchmark has them; the rest (a
second soprano, a keyboard piece) are skipped.

The files go into OUT/train/, OUT/valid/ and OUT/test/, which `seqgate prepare OUT` takes as the
splits (80/10/10 of the chorales, about). A chorale's split comes from a hash of its name (its BWV
number and movement: versions of one movement, bwv248.35-3 and bwv248.35-3c, go together), so all
12 transpositions of a chorale are in the same split (validation and test never hold a
transposition of a training piece), on every run, and adding or removing a chorale moves no other.
No music is in two splits either: a score whose notes are those of an earlier one (the corpus holds
a few chorales twice, in two formats or with and without instruments; a transposed copy counts
too) is skipped as a duplicate, and chorales that share 85% of their notes (a harmonization Bach
used twice, a note changed) go where the first of them goes. OUT/chorales.tsv lists every score:
the parts taken, its split, the near-duplicates it shares it with, or why it was skipped.

music21 is a development dependency (`pip install -e .[dev]`); mido is a dependency of seqgate.
The output is deterministic: the same music21 corpus gives the same files, byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

try:  # seqgate's own atomic writer when seqgate is importable (PYTHONPATH or an installed seqgate)
    from seqgate.files import atomic_write
except ImportError:
    @contextlib.contextmanager
    def atomic_write(path, mode="wb"):
        """A temporary file beside `path`, renamed onto it on success, removed otherwise."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, mode) as handle:
                yield handle
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise

SPLITS = ("train", "valid", "test")
SHIFTS = range(-5, 7)  # -5..+6 semitones: each of the 12 keys once
VOICES = 4
# A part is a voice of the choir by the first word of its name ("Bass", "Bass Continuo", "Soprano\r
# Oboe 1,2\rViolin1"); "Continuo" alone, "Horn 1" and the like are instruments.
VOICE_NAMES = ("soprano", "alto", "tenor", "bass")
# The scores carry no tempo of Bach's; as scripts/make_sample_midi.py, write one, slower than
# music21's 120. The roll follows the beat, not the clock, so this only matters for listening.
DEFAULT_QPM = 80
# One path per score: music21 holds a few chorales both as MusicXML and as Humdrum.
FORMAT_PREFERENCE = (".mxl", ".xml", ".musicxml", ".krn")
LOWEST_PITCH, HIGHEST_PITCH = 21, 108  # the 88 keys seqgate's roll holds
# Two chorales sharing this much of their notes (near_duplicates) are put in one split. In
# music21's corpus nine pairs (one harmonization in two cantatas, or in a cantata and a
# collection) share 89-99%; the next pairs share 79% and less: two harmonizations of one tune,
# which are left apart, as in the JSB chorales benchmark.
NEAR_OVERLAP = 0.85
NEAR_SIZE = (0.8, 1.25)  # only chorales within this ratio of notes struck are compared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (train/, valid/, test/ are made in it)")
    parser.add_argument("--qpm", type=float, default=DEFAULT_QPM,
                        help=f"tempo in quarter notes per minute (default {DEFAULT_QPM})")
    parser.add_argument("--valid", type=float, default=0.1, help="fraction of chorales for valid (default 0.1)")
    parser.add_argument("--test", type=float, default=0.1, help="fraction of chorales for test (default 0.1)")
    options = parser.parse_args(argv)
    try:
        import mido  # noqa: F401
        from music21 import corpus  # noqa: F401
    except ImportError as error:
        print(f"{error.name} is needed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    if not (0 <= options.valid and 0 <= options.test and options.valid + options.test < 1):
        print("--valid and --test must be fractions that leave some chorales for train", file=sys.stderr)
        return 2

    started = time.perf_counter()
    rows, written = write_corpus(options.out, options.qpm, (options.valid, options.test), started)
    write_listing(options.out / "chorales.tsv", rows)
    kept = [row for row in rows if row["split"]]
    skipped = [row for row in rows if not row["split"]]
    duplicates = sum(row["reason"].startswith("duplicate") for row in skipped)
    size = sum((options.out / split / name).stat().st_size for split, names in written.items() for name in names)
    print(f"{len(rows)} scores: {len(kept)} chorales written, {len(skipped)} skipped "
          f"({duplicates} duplicates, {len(skipped) - duplicates} not convertible or not four voices); "
          f"{sum(row['parts'] != 'all' for row in kept)} of the chorales without their instruments")
    for split in SPLITS:
        chorales = sum(row["split"] == split for row in kept)
        print(f"  {split:5s}: {chorales:4d} chorales, {len(written[split]):5d} files")
    print(f"wrote {sum(map(len, written.values()))} MIDI files to {options.out} ({size / 2**20:.1f} MiB) "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


def bach_scores() -> list[tuple[str, Path]]:
    """(name like 'bwv26.6', path) of every score under music21's bach/ folder, one path per
    name, in name order."""
    from music21 import corpus

    by_name: dict[str, Path] = {}
    for path in corpus.getComposer("bach"):
        suffix = path.suffix.lower()
        if suffix not in FORMAT_PREFERENCE:  # .rntxt: Roman-numeral analyses, not notes
            continue
        current = by_name.get(path.stem)
        if current is None or FORMAT_PREFERENCE.index(suffix) < FORMAT_PREFERENCE.index(current.suffix.lower()):
            by_name[path.stem] = path
    return sorted(by_name.items())


def riemenschneider_numbers() -> dict[str, int]:
    """Corpus name ('bwv26.6') -> its (first) number in Riemenschneider's edition, for the listing."""
    from music21.corpus import chorales

    numbers: dict[str, int] = {}
    for number, entry in sorted(chorales.ChoraleListRKBWV().byRiemenschneider.items()):
        numbers.setdefault("bwv" + entry["bwv"], number)
    return numbers


def split_of(name: str, valid: float, test: float) -> str:
    """The split of a chorale: from a hash of its movement's name alone ('bwv248.35' for
    'bwv248.35-3c'), so that it is the same for all of its transpositions and on every run, and
    does not depend on which other chorales there are. The part after the dash names a version of
    the movement (with continuo, a simpler setting, another source), often nearly the same notes,
    so all versions go where the movement goes."""
    movement = name.split("-")[0]
    position = int.from_bytes(hashlib.sha256(movement.encode("utf-8")).digest()[:8], "big") / 2.0**64
    if position < 1 - valid - test:
        return "train"
    return "valid" if position < 1 - test else "test"


def voice_parts(score) -> list | str:
    """The four parts of a four-voice chorale: all four parts of a score that has four, else its
    Soprano, Alto, Tenor and Bass parts (instruments left out); or why it is not one."""
    if len(score.parts) == VOICES:
        return list(score.parts)
    by_voice: dict[str, list] = {}
    for part in score.parts:
        words = (part.partName or "").lower().split()
        if words and words[0] in VOICE_NAMES:
            by_voice.setdefault(words[0], []).append(part)
    if [len(by_voice.get(voice, ())) for voice in VOICE_NAMES] != [1] * VOICES:
        return f"{len(score.parts)} parts, not one each of soprano, alto, tenor, bass"
    return [by_voice[voice][0] for voice in VOICE_NAMES]


def convert(path: Path, qpm: float):
    """(a chorale as a mido.MidiFile, repeats written out, one tempo; which parts were taken), or
    why it was skipped."""
    import mido
    from music21 import converter, midi, tempo

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # music21 warns about many scores' details
            score = converter.parse(path)
            if hasattr(score, "scores"):  # an Opus: not a single chorale
                return "several pieces in one file"
            voices = voice_parts(score)
            if isinstance(voices, str):
                return voices
            taken = "all" if len(score.parts) == VOICES else f"S/A/T/B of {len(score.parts)}"
            kept = {id(part) for part in voices}
            for part in list(score.parts):
                if id(part) not in kept:  # an instrument: the chorale is the four voices
                    score.remove(part)
            # One tempo for all: a few scores carry an encoder's "playback only" mark, which is no
            # more Bach's than music21's default.
            for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
                mark.activeSite.remove(mark)
            score.insert(0, tempo.MetronomeMark(number=qpm))
            data = midi.translate.streamToMidiFile(score).writestr()
    except Exception as error:  # noqa: BLE001  (music21 raises many types for a score it cannot convert)
        return f"music21 cannot convert it ({type(error).__name__})"
    return mido.MidiFile(file=io.BytesIO(data)), taken


def fingerprint(midi_file) -> str:
    """A hash of the notes (start, end, pitch above the lowest), the same for two files of the
    same music in any key or track order, so that duplicates in the corpus are found."""
    notes, lowest = [], 128
    for track in midi_file.tracks:
        now, sounding = 0, {}
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault((message.channel, message.note), []).append(now)
            elif message.type in ("note_on", "note_off"):
                starts = sounding.get((message.channel, message.note))
                if starts:
                    notes.append((starts.pop(0), now, message.note))
                    lowest = min(lowest, message.note)
    notes = sorted((start, end, pitch - lowest) for start, end, pitch in notes)
    return hashlib.sha256(repr((midi_file.ticks_per_beat, notes)).encode()).hexdigest()


def pitch_range(midi_file) -> tuple[int, int]:
    pitches = [m.note for track in midi_file.tracks for m in track if m.type in ("note_on", "note_off")]
    return (min(pitches), max(pitches)) if pitches else (60, 60)


# mido's key names as (sharps, minor) and back, to move a key signature with the notes.
def _key_tables():
    from mido.midifiles.meta import _key_signature_decode as decode  # {(sharps, mode): name}
    return decode, {name: key for key, name in decode.items()}


def transposed_key(name: str, shift: int) -> str:
    """A mido key name moved by `shift` semitones: each semitone up is 7 more sharps (mod 12),
    written with -5..+6 sharps (Db, not C#; F#, not Gb)."""
    decode, encode = _key_tables()
    sharps, minor = encode[name]
    return decode[((sharps + 7 * shift + 5) % 12 - 5, minor)]


def transposed(midi_file, shift: int) -> bytes:
    """The MIDI bytes of `midi_file` with every note and key signature moved by `shift` semitones."""
    import mido

    out = mido.MidiFile(type=midi_file.type, ticks_per_beat=midi_file.ticks_per_beat)
    for track in midi_file.tracks:
        moved = mido.MidiTrack()
        for message in track:
            if message.type in ("note_on", "note_off", "polytouch"):
                message = message.copy(note=message.note + shift)
            elif message.type == "key_signature":
                message = message.copy(key=transposed_key(message.key, shift))
            moved.append(message)
        out.tracks.append(moved)
    buffer = io.BytesIO()
    out.save(file=buffer)
    return buffer.getvalue()


def onset_set(midi_file) -> set[tuple[int, int]]:
    """(eighth note, pitch) of every note struck: a chorale's notes on the grid seqgate reads."""
    eighth, struck = max(1, midi_file.ticks_per_beat // 2), set()
    for track in midi_file.tracks:
        now = 0
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                struck.add((now // eighth, message.note))
    return struck


def near_duplicates(chorales: dict[str, set[tuple[int, int]]]) -> list[tuple[str, str, float]]:
    """(name, name, overlap) of every two chorales whose notes nearly coincide in some key.

    Bach used some harmonizations in two cantatas (bwv158.4 and bwv279, bwv59.3 and bwv175.7),
    with a note or a rhythm changed: not duplicates, but in two splits one would let a model be
    tested on a piece it has all but learned. Overlap is the Jaccard index of the struck
    (eighth, pitch) sets, the second moved to the first's key by their last bass notes (chorales
    end on the tonic), or an octave either side of that.
    """
    final_bass = {name: min(notes, key=lambda note: (-note[0], note[1]))[1] for name, notes in chorales.items() if notes}
    names, found = sorted(final_bass), []
    for i, first in enumerate(names):
        a = chorales[first]
        for second in names[i + 1:]:
            b = chorales[second]
            if not NEAR_SIZE[0] < len(a) / len(b) < NEAR_SIZE[1]:  # too different in length to be the same
                continue
            base = final_bass[first] - final_bass[second]
            best = 0.0
            for move in (base, base - 12, base + 12):
                moved = {(onset, pitch + move) for onset, pitch in b}
                best = max(best, len(a & moved) / len(a | moved))
            if best >= NEAR_OVERLAP:
                found.append((first, second, best))
    return found


def write_corpus(out: Path, qpm: float, fractions: tuple[float, float], started: float):
    """Convert every score and write the kept ones in 12 keys; (listing rows, files per split)."""
    numbers = riemenschneider_numbers()
    scores = bach_scores()
    seen: dict[str, str] = {}  # note fingerprint -> name of the first score with those notes
    kept: dict[str, tuple[dict, object]] = {}  # name -> (listing row, MIDI), in name order
    rows = []
    for index, (name, path) in enumerate(scores, 1):
        row = {"name": name, "file": path.name, "riemenschneider": numbers.get(name, ""), "parts": "",
               "split": "", "reason": ""}
        rows.append(row)
        result = convert(path, qpm)
        if isinstance(result, str):
            row["reason"] = result
        else:
            result, row["parts"] = result
            key = fingerprint(result)
            low, high = pitch_range(result)
            if key in seen:
                row["reason"] = f"duplicate of {seen[key]}"
            elif low + min(SHIFTS) < LOWEST_PITCH or high + max(SHIFTS) > HIGHEST_PITCH:
                row["reason"] = "a transposition would leave the 88 keys"
            else:
                seen[key] = name
                kept[name] = (row, result)
        if row["reason"]:
            print(f"skipped {name}: {row['reason']}", file=sys.stderr)
        if index % 50 == 0:
            print(f"{index}/{len(scores)} scores converted, {time.perf_counter() - started:.0f} s", file=sys.stderr)

    # Near-duplicates share a split: each group goes where its first name (in order) would go.
    leader = {name: name for name in kept}

    def find(name: str) -> str:
        while leader[name] != name:
            name = leader[name]
        return name

    pairs = near_duplicates({name: onset_set(midi) for name, (_, midi) in kept.items()})
    for first, second, overlap in pairs:
        print(f"near duplicates, one split: {first} and {second} ({overlap:.0%} of notes shared)", file=sys.stderr)
        a, b = sorted((find(first), find(second)))
        leader[b] = a
        for name, other in ((first, second), (second, first)):
            row = kept[name][0]
            row["same_split_as"] = ",".join(filter(None, (row.get("same_split_as", ""), other)))

    written: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name, (row, midi) in kept.items():
        split = row["split"] = split_of(find(name), *fractions)
        for shift in SHIFTS:
            file_name = f"{name}_t{shift:+d}.mid"
            with atomic_write(out / split / file_name, "wb") as handle:
                handle.write(transposed(midi, shift))
            written[split].append(file_name)
    # Leave no file of an earlier run (another split, a score since skipped) behind.
    for split in SPLITS:
        keep = set(written[split])
        for stale in (out / split).glob("*.mid"):
            if stale.name not in keep:
                stale.unlink()
    return rows, written


def write_listing(path: Path, rows: list[dict]) -> None:
    columns = ("name", "file", "riemenschneider", "parts", "split", "same_split_as", "reason")
    lines = ["\t".join(columns)] + ["\t".join(str(row.get(column, "")) for column in columns) for row in rows]
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
