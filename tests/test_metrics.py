"""metrics.roll_statistics on hand-made rolls whose statistics are known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqgate.music.metrics import entropy_bits, roll_statistics
from seqgate.data.keys import estimate_key
from seqgate.data.roll import LOWEST_PITCH

N_KEYS = 88
# What the MusPy measures say of a corpus without frames: their denominators are empty.
NO_MUSPY_MEASURES = {"polyphony": None, "scale_consistency": None, "pitch_in_scale_rate": None,
                     "empty_beat_rate": None, "groove_consistency": None}


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
    assert silent["mean_pitch"] is None

    nothing = roll_statistics([])
    assert nothing == {"frames": 0, "pieces": 0, "notes": 0, "mean_notes_per_frame": 0.0,
                       "pitch_class_entropy": 0.0, "empty_frame_share": 0.0, "max_polyphony": 0,
                       "lowest_pitch": None, "highest_pitch": None, "mean_pitch": None,
                       **NO_MUSPY_MEASURES}

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


# --- MusPy's measures -----------------------------------------------------------------------


def melody(pitches: list[int], frames_each: int | list[int] = 1) -> np.ndarray:
    """A one-key-at-a-time roll: each pitch in turn for `frames_each` frames (one or a list)."""
    lengths = [frames_each] * len(pitches) if isinstance(frames_each, int) else frames_each
    ends = np.cumsum(lengths)
    notes = [(p, int(e - n), int(e)) for p, n, e in zip(pitches, lengths, ends)]
    return roll_with(int(ends[-1]), notes)


C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def test_polyphony_averages_over_sounding_frames_only():
    # Triad for three frames, then two silent frames: 3 keys whenever something sounds.
    roll = roll_with(5, [(60, 0, 3), (64, 0, 3), (67, 0, 3)])
    stats = roll_statistics(roll)
    assert stats["polyphony"] == 3.0
    assert stats["mean_notes_per_frame"] == pytest.approx(9 / 5)  # the all-frames mean differs
    # One key for two frames, three keys for one, silence for three: (2 + 3) / 3 frames.
    assert roll_statistics(roll_with(6, [(60, 0, 3), (62, 2, 3), (64, 2, 3)]))["polyphony"] == \
        pytest.approx(5 / 3)
    assert roll_statistics(np.zeros((4, N_KEYS), dtype=bool))["polyphony"] is None


def test_c_major_scale_is_wholly_in_scale():
    stats = roll_statistics(melody(C_MAJOR_SCALE, 2))
    assert stats["scale_consistency"] == 1.0
    assert stats["pitch_in_scale_rate"] == 1.0


def test_one_chromatic_note_among_seven_gives_seven_eighths():
    # C D E F G A B, and C# (in no scale that holds all of them; D major keeps only 5 plus C#).
    roll = melody([60, 62, 64, 65, 67, 69, 71, 61], [4, 1, 2, 1, 3, 1, 1, 1])
    assert estimate_key(np.array([60, 62, 64, 65, 67, 69, 71, 61]),
                        np.array([4, 1, 2, 1, 3, 1, 1, 1])) == (0, False)  # C major
    stats = roll_statistics(roll)
    assert stats["scale_consistency"] == pytest.approx(7 / 8)
    assert stats["pitch_in_scale_rate"] == pytest.approx(7 / 8)


def test_scale_measures_count_notes_not_frames():
    # C held 10 frames, then C# and D for one frame each: no major or minor scale holds three
    # neighbouring semitones, so the best scale takes 2 of the 3 notes (11 of 12 frames).
    roll = melody([60, 61, 62], [10, 1, 1])
    assert roll_statistics(roll)["scale_consistency"] == pytest.approx(2 / 3)


def test_minor_is_the_natural_minor():
    # A harmonic minor, A and E held longest: the key is A minor, whose natural scale lacks G#.
    pitches, frames = [69, 71, 72, 74, 76, 77, 80, 81], [4, 1, 2, 1, 3, 1, 1, 4]
    assert estimate_key(np.array(pitches), np.array(frames)) == (9, True)
    stats = roll_statistics(melody(pitches, frames))
    assert stats["pitch_in_scale_rate"] == pytest.approx(7 / 8)  # 1.0 if minor were harmonic
    # No major / natural minor holds A B C D E F G#: C major (or A minor) takes all but G#.
    assert stats["scale_consistency"] == pytest.approx(7 / 8)


def test_each_piece_is_measured_in_its_own_key():
    # C major and F# major together use all twelve pitch classes: one scale for the corpus would
    # leave notes out, each piece's own scale leaves none.
    f_sharp_major = [66, 68, 70, 71, 73, 75, 77, 78]
    assert estimate_key(np.array(f_sharp_major), np.ones(8)) == (6, False)
    stats = roll_statistics([melody(C_MAJOR_SCALE), melody(f_sharp_major)])
    assert stats["scale_consistency"] == 1.0
    assert stats["pitch_in_scale_rate"] == 1.0
    # Pooled by notes: a piece of 8 in-scale notes beside one of 3 notes with 2 in any scale.
    pooled = roll_statistics([melody(C_MAJOR_SCALE), melody([60, 61, 62])])
    assert pooled["scale_consistency"] == pytest.approx((8 + 2) / 11)


def test_scale_measures_need_notes():
    stats = roll_statistics(np.zeros((6, N_KEYS), dtype=bool), frames_per_quarter=1)
    assert stats["scale_consistency"] is None and stats["pitch_in_scale_rate"] is None


def test_a_restruck_note_counts_twice_only_when_onsets_say_so():
    roll = roll_with(4, [(60, 0, 4)])  # C4 sounding through all four frames
    struck = np.zeros_like(roll)
    struck[[0, 2], 60 - 21] = True  # struck at frame 0 and again at frame 2
    assert roll_statistics(roll)["notes"] == 1
    assert roll_statistics(roll, onsets=[struck])["notes"] == 2
    assert roll_statistics(roll, onsets=struck)["notes"] == 2  # one piece given on its own


def test_onsets_on_silence_are_ignored_and_notes_start_without_them():
    roll = roll_with(6, [(60, 0, 3), (64, 3, 6)])
    struck = np.zeros_like(roll)
    struck[1, 70 - 21] = True  # a strike on a key that does not sound: no note
    struck[5, 62 - 21] = True
    # Neither note's start is marked in `struck`, yet both notes count.
    assert roll_statistics(roll, onsets=[struck])["notes"] == 2
    assert roll_statistics(roll, onsets=[np.zeros_like(roll)])["notes"] == 2


def test_restruck_notes_count_in_the_scale_measures():
    # C struck three times while held, then C# and D: 3 C notes of 5 with C# or D.
    roll = melody([60, 61, 62], [6, 1, 1])
    struck = np.zeros_like(roll)
    struck[[0, 2, 4], 60 - 21] = True
    assert roll_statistics(roll)["scale_consistency"] == pytest.approx(2 / 3)
    assert roll_statistics(roll, onsets=[struck])["scale_consistency"] == pytest.approx(4 / 5)


def test_empty_beat_rate_at_known_places():
    # Two frames a beat, six beats: sound in beat 0 (frames 0-1), beat 2 (frame 5) and beats 3-4
    # (frames 7-8, one note across the beat line); beats 1 and 5 are empty.
    roll = roll_with(12, [(60, 0, 2), (62, 5, 6), (64, 7, 9)])
    assert roll_statistics(roll, frames_per_quarter=2)["empty_beat_rate"] == pytest.approx(2 / 6)
    assert roll_statistics(roll)["empty_beat_rate"] is None  # no grid, no beats


def test_a_held_note_fills_every_beat_it_sounds_in():
    # Struck in beat 0 and held through beat 2: MusPy fills every beat a note spans (sounding,
    # not starting); only beat 3 is empty.
    roll = roll_with(8, [(60, 0, 6)])
    assert roll_statistics(roll, frames_per_quarter=2)["empty_beat_rate"] == pytest.approx(1 / 4)


def test_empty_beats_are_pooled_over_pieces_with_partial_last_beats():
    first = roll_with(12, [(60, 0, 2), (62, 5, 6), (64, 7, 9)])  # 6 beats, 2 empty
    second = roll_with(5, [(60, 4, 5)])  # 3 beats (the last one frame long), sound in beat 2 only
    stats = roll_statistics([first, second], frames_per_quarter=2)
    assert stats["empty_beat_rate"] == pytest.approx((2 + 2) / (6 + 3))


def test_empty_beats_on_grids_finer_and_coarser_than_a_beat():
    # Half a frame a quarter: each frame is a half note, two beats. 3 frames, sound in frame 1.
    half_notes = roll_with(3, [(60, 1, 2)])
    assert roll_statistics(half_notes, frames_per_quarter=0.5)["empty_beat_rate"] == \
        pytest.approx(4 / 6)
    # 1.5 frames a quarter: frame 1 spans the line between beats 0 and 1, and fills both.
    straddling = roll_with(6, [(60, 1, 2)])
    assert roll_statistics(straddling, frames_per_quarter=1.5)["empty_beat_rate"] == \
        pytest.approx(2 / 4)


def test_two_identical_measures_of_onsets_have_groove_one():
    # One frame a beat, four a measure: onsets on beats 1 and 3 of both measures; the second
    # measure uses other keys and a chord, which the onset pattern does not see.
    roll = roll_with(8, [(60, 0, 1), (64, 2, 4), (67, 4, 5), (71, 4, 5), (72, 6, 7)])
    assert roll_statistics(roll, frames_per_quarter=1)["groove_consistency"] == 1.0


def test_groove_loses_a_share_per_differing_position():
    # Measure 1 onsets at positions 0, 2; measure 2 at 0, 1: positions 1 and 2 differ.
    roll = roll_with(8, [(60, 0, 1), (62, 2, 3), (64, 4, 5), (65, 5, 6)])
    assert roll_statistics(roll, frames_per_quarter=1)["groove_consistency"] == \
        pytest.approx(1 - 2 / 4)
    # Three measures of eight frames (fpq 2), a one-frame note of its own key at each onset:
    # positions {0, 4}, then {0, 4, 5} (1 differs), then {0, 1, 6} (4 and 5 gone, 1 and 6 new).
    onsets_at = [0, 4, 8, 12, 13, 16, 17, 22]
    roll = roll_with(24, [(60 + i, t, t + 1) for i, t in enumerate(onsets_at)])
    assert roll_statistics(roll, frames_per_quarter=2)["groove_consistency"] == \
        pytest.approx(1 - (1 + 4) / (2 * 8))


def test_a_held_note_is_no_onset_but_a_restruck_one_is():
    # Measure 1: C struck at position 0 and held into measure 2, which has no strike of its own.
    roll = roll_with(8, [(60, 0, 8)])
    assert roll_statistics(roll, frames_per_quarter=1)["groove_consistency"] == pytest.approx(3 / 4)
    struck = np.zeros_like(roll)
    struck[[0, 4], 60 - 21] = True  # struck again on the first beat of measure 2
    assert roll_statistics(roll, onsets=[struck], frames_per_quarter=1)["groove_consistency"] == 1.0


def test_groove_never_compares_measures_of_different_pieces():
    # Each piece repeats its own measure; the pieces' patterns differ everywhere they can.
    first = roll_with(8, [(60, 0, 1), (60, 4, 5)])
    second = roll_with(8, [(60, t, t + 1) for t in (1, 2, 3, 5, 6, 7)])
    assert roll_statistics([first, second], frames_per_quarter=1)["groove_consistency"] == 1.0
    # A partial last measure is padded with silence, not with the start of the next piece.
    partial = roll_with(6, [(60, 0, 1), (60, 4, 5)])
    busy_start = roll_with(8, [(60 + i, t, t + 1) for i, t in enumerate((0, 1, 4, 5))])
    assert roll_statistics([partial, busy_start], frames_per_quarter=1)["groove_consistency"] == 1.0
    # Pieces of one measure each have no pair to compare, however many of them there are.
    one_measure = roll_with(4, [(60, 0, 1)])
    one_measure_each = roll_statistics([one_measure, first[4:]], frames_per_quarter=1)
    assert one_measure_each["groove_consistency"] is None
    assert roll_statistics([first], frames_per_quarter=None)["groove_consistency"] is None


def test_groove_pads_a_partial_last_measure_with_silence():
    # Six frames, four a measure: measure 2 is positions 0-1 then padding.
    same = roll_with(6, [(60, 0, 1), (60, 4, 5)])
    assert roll_statistics(same, frames_per_quarter=1)["groove_consistency"] == 1.0
    missing = roll_with(6, [(60, 0, 1), (62, 2, 3)])  # positions 0 and 2 lack a partner
    assert roll_statistics(missing, frames_per_quarter=1)["groove_consistency"] == \
        pytest.approx(1 - 2 / 4)


def test_groove_pools_measure_pairs_over_pieces():
    steady = roll_with(12, [(60, t, t + 1) for t in (0, 4, 8)])  # 2 pairs, no difference
    changing = roll_with(8, [(60, 0, 1), (60, 5, 6)])  # 1 pair, 2 positions differ
    stats = roll_statistics([steady, changing], frames_per_quarter=1)
    assert stats["groove_consistency"] == pytest.approx(1 - 2 / (4 * 3))


def test_silent_pieces_on_a_grid():
    stats = roll_statistics(np.zeros((8, N_KEYS), dtype=bool), frames_per_quarter=1)
    assert stats["empty_beat_rate"] == 1.0
    assert stats["groove_consistency"] == 1.0  # two empty measures, alike
    assert stats["polyphony"] is None
    assert roll_statistics([], frames_per_quarter=2) == roll_statistics([]) == {
        **roll_statistics([]), **NO_MUSPY_MEASURES}


def test_zero_length_pieces_on_a_grid_hold_no_beat_or_measure():
    empty = np.zeros((0, N_KEYS), dtype=bool)
    piece = roll_with(8, [(60, 0, 1), (62, 4, 5)])  # beats 0 and 4 sound, measures alike
    stats = roll_statistics([empty, piece, empty, piece, empty], frames_per_quarter=1)
    assert stats["empty_beat_rate"] == pytest.approx(12 / 16)
    assert stats["groove_consistency"] == 1.0
    struck = [np.zeros_like(r) for r in (empty, piece, empty, piece, empty)]
    assert roll_statistics([empty, piece, empty, piece, empty], onsets=struck)["notes"] == 4


def test_beat_measures_agree_on_many_pieces_and_on_one():
    generator = np.random.default_rng(3)
    piece = generator.random((40, N_KEYS)) < 0.05
    one = roll_statistics(piece, frames_per_quarter=2)
    many = roll_statistics([piece] * 50, frames_per_quarter=2)
    for key in ("polyphony", "scale_consistency", "pitch_in_scale_rate", "empty_beat_rate",
                "groove_consistency"):
        assert many[key] == pytest.approx(one[key]), key


def test_muspy_measures_are_plain_json():
    roll = roll_with(9, [(60, 0, 3), (64, 1, 4), (61, 6, 7)])
    stats = roll_statistics([roll], onsets=[roll], frames_per_quarter=np.int64(1))
    assert json.loads(json.dumps(stats)) == stats
    for value in stats.values():
        assert value is None or type(value) in (int, float)


@pytest.mark.parametrize("grid", [0, -2, True, float("nan"), float("inf"), 1 / 3, "2"])
def test_rejects_a_grid_that_is_no_whole_number_of_frames_per_measure(grid):
    with pytest.raises(ValueError, match="frames_per_quarter|whole number"):
        roll_statistics(roll_with(4, [(60, 0, 1)]), frames_per_quarter=grid)


def test_rejects_onsets_that_do_not_match_the_rolls():
    roll = roll_with(4, [(60, 0, 1)])
    with pytest.raises(ValueError, match="one array per roll"):
        roll_statistics([roll, roll], onsets=[roll])
    with pytest.raises(ValueError, match="one array per roll"):
        roll_statistics([roll], onsets=[roll[:3]])


def test_describe_corpus_takes_the_first_pieces_up_to_the_frame_cap(monkeypatch):
    from seqgate.music import metrics
    from seqgate.data.dataset import Dataset

    rolls = [np.zeros((n, 88), dtype=bool) for n in (4, 6, 8)]
    for roll in rolls:
        roll[:, 40] = True
    struck = [roll & (np.arange(len(roll)) % 2 == 0)[:, None] for roll in rolls]  # every other frame
    dataset = Dataset.from_rolls(rolls, ["train"] * 3, ["a", "b", "c"], {"frames_per_quarter": 2}, struck=struck)
    monkeypatch.setattr(metrics, "DESCRIBED_MAX_FRAMES", 7)  # reached inside the second piece
    stats, restrikes = metrics.describe_corpus(dataset, [0, 1, 2])
    assert stats == roll_statistics(rolls[:2], struck[:2], 2) and stats["frames"] == 10
    assert restrikes[40] == pytest.approx(3 / 8)  # held at frames 1..3 and 1..5, struck again at 2; 2 and 4
    plain = Dataset.from_rolls(rolls, ["train"] * 3, ["a", "b", "c"], {"frames_per_quarter": 2})
    assert metrics.describe_corpus(plain, [0, 1, 2])[1] is None


def test_mean_pitch_is_the_register_of_the_sounding_cells():
    roll = np.zeros((4, N_KEYS), dtype=bool)
    roll[:, 60 - LOWEST_PITCH] = True  # middle C held for 4 frames
    roll[0, 72 - LOWEST_PITCH] = True  # an octave above for one
    assert roll_statistics([roll])["mean_pitch"] == pytest.approx((4 * 60 + 72) / 5)
