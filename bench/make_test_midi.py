"""Write varied synthetic MIDI files for benchmarks: several tracks, tempo changes, drums.

    python bench/make_test_midi.py OUT_FOLDER --count 300 --seed 0

Each file: 2-6 pitched tracks (chords, bass, melody on random GM programs), often a drum track
on channel 10, 1-4 tempo changes, 8-160 bars of 4/4, ticks per quarter from 96 to 960. Pieces
are random walks over a diatonic scale, enough like music to exercise a parser; not music.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import mido

MAJOR = (0, 2, 4, 5, 7, 9, 11)


def make_piece(rng: random.Random) -> mido.MidiFile:
    tpq = rng.choice([96, 120, 192, 220, 384, 480, 960])
    bars = rng.choice([8, 16, 32, 64, 96, 160])
    beats = bars * 4
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)

    conductor = [(0, mido.MetaMessage("time_signature", numerator=4, denominator=4))]
    for beat in [0] + sorted(rng.sample(range(1, beats), rng.randint(0, min(3, beats - 1)))):
        conductor.append((beat * tpq, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(rng.uniform(50, 200)))))
    midi.tracks.append(_track(conductor))

    tonic = rng.randrange(12)
    scale = [o * 12 + tonic + s for o in range(1, 9) for s in MAJOR]
    for channel in range(rng.randint(2, 6)):
        low = rng.randrange(len(scale) - 20)
        step = rng.choice([0.25, 0.5, 1.0, 2.0])  # note length in beats
        voices = rng.choice([1, 1, 2, 3])
        events = [(0, mido.Message("program_change", channel=channel, program=rng.randrange(128)))]
        position, degree = 0.0, low + 8
        while position < beats:
            degree = min(max(degree + rng.randint(-2, 2), low), low + 18)
            length = step * rng.choice([1, 1, 1, 2])
            if rng.random() > 0.15:  # some rests
                for voice in range(voices):
                    pitch = scale[min(degree + 2 * voice, len(scale) - 1)]
                    _note(events, channel, pitch, position, position + length * rng.uniform(0.7, 1.0), tpq, rng)
            position += length
        midi.tracks.append(_track(events))

    if rng.random() < 0.6:
        events = []
        for eighth in range(beats * 2):
            for drum, chance in ((36, 0.3), (38, 0.2), (42, 0.8)):
                if rng.random() < chance:
                    _note(events, 9, drum, eighth / 2, eighth / 2 + 0.25, tpq, rng)
        midi.tracks.append(_track(events))
    return midi


def _note(events, channel, pitch, start, end, tpq, rng):
    velocity = rng.randint(40, 110)
    events.append((round(start * tpq), mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
    events.append((round(end * tpq), mido.Message("note_off", channel=channel, note=pitch, velocity=0)))


def _track(events) -> mido.MidiTrack:
    """(absolute tick, message) pairs -> a track with delta times; offs before ons at a tick."""
    track, now = mido.MidiTrack(), 0
    for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=tick - now))
        now = tick
    return track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for number in range(args.count):
        make_piece(rng).save(str(args.out / f"synthetic_{args.seed}_{number:04d}.mid"))
    print(f"wrote {args.count} MIDI files to {args.out}")


if __name__ == "__main__":
    main()
