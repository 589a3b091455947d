"""metrics.roll_statistics on hand-made rolls whose statistics are known."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from seqgate.metrics import entropy_bits, roll_statistics

N_KEYS = 88


def roll_with(frames: int, notes: list[tuple[int, int, int]]) -> np.ndarray:
    """A (frames, 88) roll; each note is (midi_pitch, first_frame, end_frame exclusive)."""
    roll = np.zeros((frames, N_KEYS), dtype=bool)
    for pitch, start, end in notes:
        roll[start:end, pitch - 21] = True
    return roll


def test_c_major_triad_then_silence():
    # C4 E4 G4 held for frames 0-2, then two empty frames.
    roll = roll_with(5, [(60, 0, 3), (64, 0, 3), (67, 0, 3)])
    stats = roll_statistics([roll])
    assert stats["frames"] == 5
    assert stats["pieces"] == 1
    assert stats["notes"] == 3
    assert stats["mean_notes_per_frame"] == pytest.approx(9 / 5)
    assert stats["pitch_class_entropy"] == pytest.approx(math.log2(3))
    assert stats["empty_frame_share"] == pytest.approx(2 / 5)
    assert stats["max_polyphony"] == 3
    assert stats["lowest_pitch"] == 60
    assert stats["highest_pitch"] == 67


def test_repeated_key_with_a_gap_is_two_notes_and_held_key_is_one():
    roll = roll_with(6, [(60, 0, 2), (60, 3, 5), (72, 0, 6)])
    stats = roll_statistics([roll])
    assert stats["notes"] == 3
    assert stats["max_polyphony"] == 2
    assert stats["empty_frame_share"] == 0.0


def test_notes_do_not_run_across_pieces():
    # A4 sounds at the end of the first piece and at the start of the second: two notes.
    first = roll_with(3, [(69, 1, 3)])
    second = roll_with(2, [(69, 0, 2)])
    stats = roll_statistics([first, second])
    assert stats["pieces"] == 2
    assert stats["frames"] == 5
    assert stats["notes"] == 2


def test_octaves_share_a_pitch_class():
    # C2, C4, C6 for one frame each: all pitch class C, so entropy 0 although three keys sound.
    roll = roll_with(3, [(36, 0, 1), (60, 1, 2), (84, 2, 3)])
    stats = roll_statistics([roll])
    assert stats["pitch_class_entropy"] == 0.0
    assert stats["lowest_pitch"] == 36
    assert stats["highest_pitch"] == 84


def test_all_twelve_pitch_classes_equally_give_maximum_entropy():
    roll = roll_with(12, [(60 + step, step, step + 1) for step in range(12)])
    stats = roll_statistics([roll])
    assert stats["pitch_class_entropy"] == pytest.approx(math.log2(12))
    assert stats["mean_notes_per_frame"] == 1.0


def test_entropy_weights_pitch_classes_by_sounding_frames():
    # C for three frames, G for one: shares 3/4 and 1/4.
    roll = roll_with(4, [(60, 0, 3), (67, 3, 4)])
    expected = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert roll_statistics([roll])["pitch_class_entropy"] == pytest.approx(expected)


def test_extreme_keys_map_to_midi_21_and_108():
    roll = roll_with(1, [(21, 0, 1), (108, 0, 1)])
    stats = roll_statistics([roll])
    assert (stats["lowest_pitch"], stats["highest_pitch"]) == (21, 108)


def test_silent_and_empty_inputs():
    silent = roll_statistics([np.zeros((4, N_KEYS), dtype=bool)])
    assert silent["notes"] == 0
    assert silent["pitch_class_entropy"] == 0.0
    assert silent["empty_frame_share"] == 1.0
    assert silent["max_polyphony"] == 0
    assert silent["lowest_pitch"] is None and silent["highest_pitch"] is None

    nothing = roll_statistics([])
    assert nothing["frames"] == 0 and nothing["notes"] == 0
    assert nothing["lowest_pitch"] is None

    zero_length = roll_statistics([np.zeros((0, N_KEYS), dtype=bool), roll_with(2, [(60, 0, 2)])])
    assert zero_length["frames"] == 2 and zero_length["notes"] == 1


def test_result_is_plain_json():
    stats = roll_statistics([roll_with(5, [(60, 0, 3), (64, 1, 4)])])
    assert json.loads(json.dumps(stats)) == stats
    for value in stats.values():
        assert value is None or type(value) in (int, float)


def test_integer_rolls_count_as_boolean():
    as_int = roll_with(4, [(60, 0, 2), (62, 1, 4)]).astype(np.uint8)
    assert roll_statistics([as_int]) == roll_statistics([as_int.astype(bool)])


def test_rejects_a_flat_array():
    with pytest.raises(ValueError):
        roll_statistics([np.zeros(88, dtype=bool)])


def test_entropy_bits_of_a_fair_coin_is_one():
    assert entropy_bits(np.array([5, 5])) == pytest.approx(1.0)
    assert entropy_bits(np.zeros(12)) == 0.0


def test_whole_corpus_is_fast():
    # 170k frames in 200 pieces, about the size of the Nottingham or Piano-midi corpora.
    generator = np.random.default_rng(0)
    rolls = [generator.random((850, N_KEYS)) < 0.04 for _ in range(200)]
    started = time.perf_counter()
    stats = roll_statistics(rolls)
    elapsed = time.perf_counter() - started
    assert stats["frames"] == 170_000
    assert stats["mean_notes_per_frame"] == pytest.approx(88 * 0.04, rel=0.02)
    assert elapsed < 1.0
