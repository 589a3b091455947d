"""metrics.roll_statistics on hand-made rolls whose statistics are known."""

from __future__ import annotations

import json
import math

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
    assert stats["mean_notes_per_frame"] == pytest.approx((4 + 6) / 6)  # C4 4 frames, C5 6


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
    assert nothing == {"frames": 0, "pieces": 0, "notes": 0, "mean_notes_per_frame": 0.0,
                       "pitch_class_entropy": 0.0, "empty_frame_share": 0.0, "max_polyphony": 0,
                       "lowest_pitch": None, "highest_pitch": None}

    # Zero-length pieces first, between and last: they count as pieces but hold no frame, and
    # must neither join the notes either side of them nor point past the end of the corpus.
    empty = np.zeros((0, N_KEYS), dtype=bool)
    held = roll_with(2, [(60, 0, 2)])
    zero_length = roll_statistics([empty, held, empty, held, empty])
    assert (zero_length["pieces"], zero_length["frames"], zero_length["notes"]) == (5, 4, 2)
    assert roll_statistics([empty, empty])["pieces"] == 2  # pieces without frames still count


def test_result_is_plain_json():
    stats = roll_statistics([roll_with(5, [(60, 0, 3), (64, 1, 4)])])
    assert json.loads(json.dumps(stats)) == stats
    for value in stats.values():
        assert value is None or type(value) in (int, float)


def test_any_nonzero_value_counts_as_sounding():
    # Velocity-like values that change while a key is held: still one note per held key. (Plain
    # 0/1 integers would not catch this: 1 & ~1 is 0 as for booleans, but 3 & ~80 is not.)
    velocities = np.zeros((4, N_KEYS), dtype=np.uint8)
    velocities[:, 60 - 21] = [80, 3, 3, 64]
    velocities[1:, 62 - 21] = [1, 2, 1]
    floats = roll_with(4, [(60, 0, 4), (62, 1, 4)]).astype(np.float32)  # e.g. sampled 0.0/1.0
    for roll in (velocities, floats):
        stats = roll_statistics([roll])
        assert stats["notes"] == 2, roll.dtype
        assert stats["mean_notes_per_frame"] == pytest.approx(7 / 4)
        assert stats["max_polyphony"] == 2
        assert stats["pitch_class_entropy"] == pytest.approx(
            -(4 / 7 * math.log2(4 / 7) + 3 / 7 * math.log2(3 / 7)))


def test_one_roll_may_be_given_without_a_list():
    roll = roll_with(3, [(60, 0, 3)])
    assert roll_statistics(roll) == roll_statistics([roll])
    assert roll_statistics(roll)["pieces"] == 1


def test_rejects_a_flat_array_and_mixed_key_counts():
    with pytest.raises(ValueError):
        roll_statistics([np.zeros(88, dtype=bool)])
    with pytest.raises(ValueError, match="same number of keys"):
        roll_statistics([np.zeros((2, 88), dtype=bool), np.zeros((2, 61), dtype=bool)])


def test_entropy_bits_of_a_fair_coin_is_one_and_of_a_certainty_is_plus_zero():
    assert entropy_bits(np.array([5, 5])) == pytest.approx(1.0)
    assert entropy_bits(np.zeros(12)) == 0.0
    # One class gives -(1 * log2 1) = -0.0, which equals 0.0 but is written "-0.0" in JSON.
    assert json.dumps(entropy_bits(np.array([0, 7, 0]))) == "0.0"


def test_many_pieces_add_up_exactly():
    # 200 copies of one 5-frame piece whose last and first frames sound the same key: counts
    # scale by 200 (no note runs across the 199 joins), shares and extremes stay those of one.
    # (Speed on a corpus this size is measured by bench/metrics_speed.py, not asserted here.)
    piece = roll_with(5, [(60, 0, 2), (60, 4, 5), (67, 0, 5), (43, 2, 3)])
    stats = roll_statistics([piece] * 200)
    assert (stats["pieces"], stats["frames"], stats["notes"]) == (200, 1000, 200 * 4)
    assert stats["mean_notes_per_frame"] == pytest.approx(9 / 5)
    assert stats["empty_frame_share"] == 0.0
    assert stats["max_polyphony"] == 2
    # Pitch classes over sounding key-frames: C 3 of 9, G 5 + 1 of 9 (G2 and G4 share a class).
    assert stats["pitch_class_entropy"] == pytest.approx(
        -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3)))
    assert (stats["lowest_pitch"], stats["highest_pitch"]) == (43, 67)
