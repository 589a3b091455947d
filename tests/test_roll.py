"""MIDI <-> roll: the beat grid, drums, range, key normalisation, round trips, bad files."""

import os

import numpy as np
import pytest

from conftest import scale, write_midi
from seqgate.data.keys import estimate_tonic
from seqgate.data.roll import BadMidi, LOWEST_PITCH, N_KEYS, read_midi_roll, roll_to_midi, roll_to_notes

CHORD_PIECE = [
    {"notes": [(60, 0, 2), (64, 0, 1), (67, 1, 1.5), (72, 1.5, 4), (48, 2, 4)], "program": 41},
    {"notes": [(36, 0, 4), (79, 3, 3.5)], "program": 0},
]


def notes_of(result):
    return roll_to_notes(result.roll)


def test_roll_to_notes_joins_consecutive_frames_into_held_notes():
    roll = np.zeros((6, N_KEYS), dtype=bool)
    roll[0:3, 60 - LOWEST_PITCH] = True
    roll[4:6, 60 - LOWEST_PITCH] = True
    roll[2, 21 - LOWEST_PITCH] = True
    roll[5, 108 - LOWEST_PITCH] = True
    assert roll_to_notes(roll) == [(60, 0, 3), (21, 2, 3), (60, 4, 6), (108, 5, 6)]
    assert roll_to_notes(np.zeros((0, N_KEYS), dtype=bool)) == []


def test_read_places_notes_on_the_beat_grid(tmp_path):
    path = write_midi(tmp_path / "a.mid", CHORD_PIECE)
    result = read_midi_roll(path, frames_per_quarter=2)
    assert result.roll.dtype == bool and result.roll.shape == (8, N_KEYS)
    assert notes_of(result) == [(36, 0, 8), (60, 0, 4), (64, 0, 2), (67, 2, 3), (72, 3, 8),
                                (48, 4, 8), (79, 6, 7)]
    assert result.qpm == 120.0 and result.dropped_out_of_range == 0
    assert result.program == 41  # five notes on program 41, two on program 0


def test_midi_roll_midi_roll_is_the_identity_on_the_grid(tmp_path):
    first = read_midi_roll(write_midi(tmp_path / "a.mid", CHORD_PIECE, tempos=[(0, 90.0)]))
    count = roll_to_midi(first.roll, tmp_path / "b.mid", qpm=first.qpm, program=first.program)
    second = read_midi_roll(tmp_path / "b.mid")
    assert count == 7
    np.testing.assert_array_equal(first.roll, second.roll)
    assert second.qpm == pytest.approx(90.0, abs=1e-3) and second.program == 41
    assert sorted(os.listdir(tmp_path)) == ["a.mid", "b.mid"]  # no temporary file left behind


@pytest.mark.parametrize("frames_per_quarter", [1, 2, 3, 4])
def test_random_roll_survives_a_midi_round_trip(tmp_path, frames_per_quarter):
    rng = np.random.default_rng(frames_per_quarter)
    roll = rng.random((64, N_KEYS)) < 0.05
    roll[-1, 40] = True  # the roll's length is its last sounding frame
    roll_to_midi(roll, tmp_path / "r.mid", qpm=137.0, frames_per_quarter=frames_per_quarter)
    back = read_midi_roll(tmp_path / "r.mid", frames_per_quarter=frames_per_quarter)
    np.testing.assert_array_equal(back.roll, roll)


def test_a_tempo_change_does_not_move_notes_on_the_grid(tmp_path):
    notes = [{"notes": scale(60, 0.5) + [(48, 0, 4)]}]
    steady = read_midi_roll(write_midi(tmp_path / "steady.mid", notes, tempos=[(0, 100.0)]))
    changing = read_midi_roll(write_midi(tmp_path / "changing.mid", notes,
                                         tempos=[(0, 100.0), (1.5, 40.0), (2.5, 200.0)]))
    np.testing.assert_array_equal(steady.roll, changing.roll)
    assert changing.qpm == pytest.approx(100.0)  # the first tempo is kept


def test_missing_tempo_means_120_qpm(tmp_path):
    assert read_midi_roll(write_midi(tmp_path / "a.mid", CHORD_PIECE, tempos=[])).qpm == 120.0


def test_drums_are_left_out_unless_asked(tmp_path):
    tracks = [{"notes": [(60, 0, 1)]}, {"notes": [(36, 0, 1), (42, 1, 2)], "drum": True}]
    path = write_midi(tmp_path / "band.mid", tracks)
    assert notes_of(read_midi_roll(path)) == [(60, 0, 2)]
    assert notes_of(read_midi_roll(path, drums=True)) == [(36, 0, 2), (60, 0, 2), (42, 2, 4)]


def test_drums_only_file_is_bad_unless_drums_are_kept(tmp_path):
    path = write_midi(tmp_path / "beat.mid", [{"notes": [(36, 0, 1)], "drum": True}])
    with pytest.raises(BadMidi, match="drums only"):
        read_midi_roll(path)
    assert notes_of(read_midi_roll(path, drums=True)) == [(36, 0, 2)]


def test_notes_outside_the_keyboard_are_dropped_and_counted(tmp_path):
    path = write_midi(tmp_path / "wide.mid", [{"notes": [(10, 0, 1), (60, 0, 1), (120, 1, 2)]}])
    result = read_midi_roll(path)
    assert notes_of(result) == [(60, 0, 2)] and result.dropped_out_of_range == 2
    with pytest.raises(BadMidi, match="outside"):
        read_midi_roll(write_midi(tmp_path / "high.mid", [{"notes": [(115, 0, 1)]}]))


@pytest.mark.parametrize("key_signature", [None, "G"])
def test_transpose_to_c_moves_a_g_major_scale_to_c(tmp_path, key_signature):
    path = write_midi(tmp_path / "g.mid", [{"notes": scale(67) + scale(55)}], key_signature=key_signature)
    result = read_midi_roll(path, transpose_to_c=True)
    # G -> C by the smallest move: up a fourth (+5), not down a fifth.
    expected = read_midi_roll(write_midi(tmp_path / "c.mid", [{"notes": scale(72) + scale(60)}]))
    np.testing.assert_array_equal(result.roll, expected.roll)


def test_transpose_to_c_takes_the_octave_below_when_the_top_would_fall_off(tmp_path):
    notes = scale(91) + [(107, 8, 9)]  # G6..B7: up a fourth would pass C8
    path = write_midi(tmp_path / "g.mid", [{"notes": notes}], key_signature="G")
    result = read_midi_roll(path, transpose_to_c=True)
    assert [p for p, _, _ in notes_of(result)] == [p - 7 for p, _, _ in notes]
    assert result.dropped_out_of_range == 0


def test_transpose_to_c_moves_minor_keys_to_c_minor(tmp_path):
    path = write_midi(tmp_path / "e.mid", [{"notes": scale(64)}], key_signature="Em")
    assert notes_of(read_midi_roll(path, transpose_to_c=True))[0][0] == 60  # E -> C: down 4


def test_key_estimate_finds_the_tonic_of_a_scale():
    pitches = np.array([p for p, _, _ in scale(62)] + [62, 66, 69] * 3)  # D major, tonic weighted
    assert estimate_tonic(pitches, np.ones(len(pitches))) == 2


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "unreadable MIDI"),
    (b"this is a text file\n" * 5, "unreadable MIDI"),
])
def test_unreadable_files_raise_bad_midi_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(BadMidi, match=reason):
        read_midi_roll(path)


def test_truncated_file_raises_bad_midi(tmp_path):
    data = write_midi(tmp_path / "a.mid", CHORD_PIECE).read_bytes()
    (tmp_path / "cut.mid").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadMidi, match="unreadable MIDI"):
        read_midi_roll(tmp_path / "cut.mid")


def test_a_file_without_notes_raises_bad_midi(tmp_path):
    with pytest.raises(BadMidi, match="no notes"):
        read_midi_roll(write_midi(tmp_path / "silent.mid", [{"notes": []}]))


def test_a_corrupt_time_value_is_refused_not_allocated(tmp_path, midi_writer):
    path = midi_writer(tmp_path / "long.mid", [{"notes": [(60, 0, 1), (62, 5_000_000, 5_000_001)]}], tpq=24)
    with pytest.raises(BadMidi, match="longer than"):
        read_midi_roll(path)


REPEATED_EIGHTHS = [{"notes": [(67, 0.5 * i, 0.5 * i + 0.5) for i in range(4)] + [(60, 0, 2)], "program": 0}]


def test_a_repeated_note_survives_the_round_trip_only_with_onsets(tmp_path):
    source = write_midi(tmp_path / "repeated.mid", REPEATED_EIGHTHS)
    plain = read_midi_roll(source, frames_per_quarter=2)
    aware = read_midi_roll(source, frames_per_quarter=2, onsets=True)
    assert plain.struck is None and np.array_equal(aware.roll, plain.roll)
    # G4 sounds in all four frames: without onsets the four eighths are one held note.
    assert roll_to_notes(plain.roll) == [(60, 0, 4), (67, 0, 4)]
    expected = [(60, 0, 4), (67, 0, 1), (67, 1, 2), (67, 2, 3), (67, 3, 4)]
    assert roll_to_notes(aware.roll, aware.struck) == expected
    written = tmp_path / "written.mid"
    assert roll_to_midi(aware.roll, written, frames_per_quarter=2, struck=aware.struck) == 5
    again = read_midi_roll(written, frames_per_quarter=2, onsets=True)
    assert roll_to_notes(again.roll, again.struck) == expected


def test_a_struck_key_that_is_not_sounding_starts_nothing_and_every_note_has_a_start():
    roll = np.zeros((5, N_KEYS), dtype=bool)
    roll[1:5, 0] = True
    struck = np.zeros_like(roll)
    struck[0, 0] = struck[3, 0] = struck[2, 5] = True  # frame 0 and key 5 do not sound
    assert roll_to_notes(roll, struck) == [(21, 1, 3), (21, 3, 5)]  # frame 1 starts after silence


def test_bundled_chorales_keep_every_note_the_grid_can_hold(tmp_path):
    """MIDI -> roll with onsets -> MIDI -> roll: the same roll and onsets, and as many notes as
    (key, start frame) pairs, what the grid forces; without onsets, notes are lost."""
    from seqgate.data.prepare import bundled_corpus_dir
    from seqgate.data.roll import read_midi_sparse

    lost_without = 0
    for path in sorted(bundled_corpus_dir().glob("*.mid"))[:10]:
        sparse = read_midi_sparse(path, 2, onsets=True)
        aware = read_midi_roll(path, frames_per_quarter=2, onsets=True)
        written = tmp_path / path.name
        notes = roll_to_midi(aware.roll, written, frames_per_quarter=2, struck=aware.struck)
        assert notes == int(sparse.onsets.sum())  # every (key, start frame) pair is a note
        again = read_midi_roll(written, frames_per_quarter=2, onsets=True)
        assert np.array_equal(again.roll, aware.roll) and np.array_equal(again.struck, aware.struck)
        lost_without += notes - len(roll_to_notes(aware.roll))
    assert lost_without > 0  # the chorales repeat notes: the plain roll merges them


def test_a_batch_of_files_reads_each_as_it_reads_alone(tmp_path, midi_writer, monkeypatch):
    """read_midi_batch (what a parser worker runs on a chunk) gives every usable file the roll it
    has on its own, in order, and every other file its reason in its place, whether the cells
    are marked for the whole batch at once or a few files at a time."""
    from seqgate.data import roll
    from seqgate.data.roll import read_midi_batch, read_midi_sparse

    paths = [
        write_midi(tmp_path / "a.mid", CHORD_PIECE, tempos=[(0, 90.0)]),
        tmp_path / "empty.mid",
        write_midi(tmp_path / "b.mid", [{"notes": scale(60), "program": 40}, {"notes": [(36, 0, 1)], "drum": True}]),
        write_midi(tmp_path / "high.mid", [{"notes": [(115, 0, 1)]}]),
        midi_writer(tmp_path / "long.mid", [{"notes": [(60, 0, 1), (62, 5_000_000, 5_000_001)]}], tpq=24),
        write_midi(tmp_path / "drums.mid", [{"notes": [(36, 0, 1)], "drum": True}]),
        write_midi(tmp_path / "c.mid", REPEATED_EIGHTHS, tpq=96),
        write_midi(tmp_path / "d.mid", [{"notes": scale(50, 0.5) + [(120, 0, 1)]}]),
        tmp_path / "folder.mid",
        tmp_path / "missing.mid",
    ]
    paths[1].write_bytes(b"")
    (tmp_path / "folder.mid").mkdir()
    expected_reasons = [None, "empty file", None, "all notes outside MIDI 21..108",
                        "longer than 1,000,000 frames (a corrupt time value?)",
                        "drums only (use --drums to keep)", None, None, "not a file", "cannot open file"]
    for marked_at_once in (roll.MARKED_FRAMES_AT_ONCE, 5):  # 5: each file's cells marked apart
        monkeypatch.setattr(roll, "MARKED_FRAMES_AT_ONCE", marked_at_once)
        rolls, reasons = read_midi_batch(paths, 4, onsets=True)
        assert reasons == expected_reasons and len(rolls) == 4
        usable = [path for path, reason in zip(paths, reasons) if reason is None]
        for i, path in enumerate(usable):
            alone, piece = read_midi_sparse(path, 4, onsets=True), rolls.piece(i)
            for field in ("pitches", "frame_counts", "onsets"):
                assert np.array_equal(getattr(piece, field), getattr(alone, field)), (path.name, field)
            assert (piece.qpm, piece.program, piece.dropped_out_of_range) == \
                (alone.qpm, alone.program, alone.dropped_out_of_range)
        assert [rolls.piece(i).qpm for i in range(4)] == [90.0, 120.0, 120.0, 120.0]
        assert rolls.piece(1).program == 40 and rolls.piece(3).dropped_out_of_range == 1
        assert len(rolls.piece(2).frame_counts) == 8  # 4 quarters at 4 frames a quarter
