"""seqgate/sample.py: generation with carried state, seeds, primer, polyphony cap, MIDI out."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import symusic
import torch
from rich.console import Console

from seqgate.music import sample
from seqgate.errors import UserError
from seqgate.settings import DEFAULT_HEAD, SampleConfig
from seqgate.music.metrics import roll_statistics
from seqgate.model.heads import RANDOM_BLOCK_FRAMES
from seqgate.model.network import NextStepModel, shift_right
from seqgate.training.runs import load_model
from seqgate.data.keys import key_name, key_pitch_classes, parse_key
from seqgate.data.roll import read_midi_roll, roll_to_notes

from conftest import scale, write_midi

TICKS_PER_QUARTER = 480  # what roll_to_midi writes


def make_run(folder: Path, *, cell="gru", hidden=12, layers=1, frames_per_quarter=2,
             median_qpm=100.0, lowest_pitch=21, output_bias=0.0, seed=0) -> Path:
    """A run folder holding best.pt + config.json in the shape train.py writes, random weights.

    output_bias shifts every key's logit: about -3 gives sparse, music-like rolls, 0 dense ones.
    """
    torch.manual_seed(seed)
    model = NextStepModel(cell, hidden, layers, head=DEFAULT_HEAD)
    model.init_output_bias(torch.sigmoid(torch.full((88,), float(output_bias))))
    train_roll = np.random.default_rng(seed).random((40, 88)) < 0.05
    data = {"roll_format": {"n_keys": 88, "lowest_pitch": lowest_pitch,
                            "frames_per_quarter": frames_per_quarter},
            "median_qpm": median_qpm, "train_stats": roll_statistics([train_roll])}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "model_config": model.config().to_dict(), "model": model.state_dict(),
                "data": data, "epoch": 1, "valid_nll": 1.0}, folder / "best.pt")
    (folder / "config.json").write_text(json.dumps({"model_config": model.config().to_dict(), "data": data}))
    return folder


def random_model(cell="gru", hidden=12, layers=1, output_bias=0.0, seed=0) -> NextStepModel:
    """A Bernoulli-head model, whose keys' probabilities are one forward pass away."""
    torch.manual_seed(seed)
    model = NextStepModel(cell, hidden, layers, head="bernoulli")
    with torch.no_grad():
        model.head.bias.add_(output_bias)
    return model


# ---------------------------------------------------------------------------------------------
# Generation


@pytest.mark.parametrize("cell,layers", [("gru", 1), ("lstm", 1), ("tanh", 1), ("gru", 2),
                                         ("lstm", 2)])
def test_carried_state_gives_the_probabilities_of_a_full_forward_pass(cell, layers):
    """Each frame's probabilities, computed step by step with the carried state, equal those of
    one forward pass over the primer + everything generated: the state carried is the right one."""
    model = random_model(cell, hidden=10, layers=layers, output_bias=-1.0)
    primer = np.random.default_rng(1).random((5, 88)) < 0.1
    temperature = 0.8
    rolls, probabilities = sample.generate_with_probabilities(
        model, 3, 40, temperature=temperature, seed=3, primer=primer)
    assert rolls.shape == probabilities.shape == (3, 40, 88) and rolls.dtype == bool

    whole = np.concatenate([np.broadcast_to(primer, (3, 5, 88)), rolls], axis=1)
    with torch.no_grad():
        logits, _ = model(shift_right(torch.from_numpy(whole.astype(np.float32))))
    expected = torch.sigmoid(logits / temperature)[:, 5:].numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5, rtol=0)
    assert 0.0 < rolls.mean() < 1.0  # the check ran on real draws, not all-silent frames


@pytest.mark.parametrize("cell,layers", [("gru", 1), ("lstm", 2), ("tanh", 1)])
def test_nade_draws_give_the_conditionals_of_a_full_forward_pass(cell, layers):
    """With the NADE head each key's probability, drawn step by step with the carried state, is its
    conditional given the past frames and the keys below it, as one teacher-forced pass computes."""
    torch.manual_seed(0)
    model = NextStepModel(cell, 10, layers, head="nade", head_size=6)
    with torch.no_grad():
        model.head.visible_bias.bias.fill_(-1.5)
    primer = np.random.default_rng(1).random((5, 88)) < 0.1
    temperature = 0.8
    rolls, probabilities = sample.generate_with_probabilities(
        model, 3, 30, temperature=temperature, seed=3, primer=primer)
    whole = torch.from_numpy(np.concatenate([np.broadcast_to(primer, (3, 5, 88)), rolls], axis=1)
                             .astype(np.float32))
    with torch.no_grad():
        features, _ = model.features(shift_right(whole))
        logits = model.head.conditional_logits(features, whole)
    expected = torch.sigmoid(logits / temperature)[:, 5:].numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5, rtol=0)
    assert 0.0 < rolls.mean() < 0.5


def test_nade_generation_is_seeded_and_respects_the_cap():
    torch.manual_seed(0)
    model = NextStepModel("gru", 8, head="nade", head_size=4)
    with torch.no_grad():
        model.head.visible_bias.bias.fill_(1.0)  # dense frames, so the cap matters
    first = sample.generate(model, 2, 20, seed=4, max_polyphony=5)
    assert np.array_equal(first, sample.generate(model, 2, 20, seed=4, max_polyphony=5))
    assert not np.array_equal(first, sample.generate(model, 2, 20, seed=5, max_polyphony=5))
    assert first.sum(-1).max() == 5


def test_generation_is_seeded_and_leaves_the_model_mode_alone():
    model = random_model(output_bias=-2.0)
    model.train()
    first = sample.generate(model, 4, 50, seed=5)
    assert model.training
    np.testing.assert_array_equal(first, sample.generate(model, 4, 50, seed=5))
    assert not np.array_equal(first, sample.generate(model, 4, 50, seed=6))
    # The random numbers come in fixed blocks of frames: a longer piece starts the same way.
    longer = sample.generate(model, 4, RANDOM_BLOCK_FRAMES + 30, seed=5)
    np.testing.assert_array_equal(longer[:, :50], first)


def test_max_polyphony_keeps_the_most_probable_of_the_drawn_keys():
    model = random_model(output_bias=0.0)  # about half the keys sound in every frame
    free, probabilities = sample.generate_with_probabilities(model, 6, 30, seed=2)
    capped, capped_probabilities = sample.generate_with_probabilities(
        model, 6, 30, seed=2, max_polyphony=3)
    assert free.sum(axis=2).min() > 3
    assert capped.sum(axis=2).max() == 3
    # The first frame has the same probabilities and draws with or without the cap: the capped
    # frame must be the 3 most probable keys among those the free draw sounded.
    np.testing.assert_array_equal(capped_probabilities[:, 0], probabilities[:, 0])
    for piece in range(6):
        drawn = np.flatnonzero(free[piece, 0])
        most_probable = drawn[np.argsort(-probabilities[piece, 0, drawn])[:3]]
        assert set(np.flatnonzero(capped[piece, 0])) == set(most_probable)


def test_a_cap_above_what_is_drawn_changes_nothing():
    model = random_model(output_bias=-3.0)
    np.testing.assert_array_equal(sample.generate(model, 2, 30, seed=1, max_polyphony=88),
                                  sample.generate(model, 2, 30, seed=1))


def test_a_tiny_temperature_sounds_exactly_the_keys_above_one_half():
    model = random_model(output_bias=-0.3)
    rolls, probabilities = sample.generate_with_probabilities(model, 2, 20, temperature=1e-4,
                                                              seed=0)
    # At T -> 0, sigmoid(logit / T) is 0 or 1 except for logits within ~1e-3 of 0, so the draw
    # is the model's most likely frame.
    certain = np.abs(probabilities - 0.5) > 0.499
    assert certain.mean() > 0.95
    np.testing.assert_array_equal(rolls[certain], probabilities[certain] > 0.5)


# ---------------------------------------------------------------------------------------------
# MIDI files


def test_same_seed_writes_byte_identical_midi_and_another_seed_does_not(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-3.0)
    for folder, seed in (("a", 7), ("b", 7), ("c", 8)):
        sample.sample_to_midi(run, tmp_path / folder / "out.mid", SampleConfig(n=4, seed=seed, frames=64))
    for i in range(1, 5):
        a, b, c = ((tmp_path / folder / f"out-{i}.mid").read_bytes() for folder in "abc")
        assert a == b
        assert a != c


def test_several_pieces_go_to_numbered_files(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-3.0)
    report = sample.sample_to_midi(run, tmp_path / "out" / "song.mid", SampleConfig(n=4, frames=32, png=True))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"song-{i}.{ext}" for i in range(1, 5) for ext in ("mid", "png")]
    assert [r.path.name for r in report.results] == [f"song-{i}.mid" for i in range(1, 5)]
    assert all(r.frames == 32 and r.statistics["frames"] == 32 for r in report.results)
    assert report.train_stats["frames"] == 40


def test_one_piece_goes_to_the_named_file(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-3.0)
    report = sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(frames=16))
    assert [r.path for r in report.results] == [tmp_path / "out.mid"]
    assert (tmp_path / "out.mid").is_file()


def _roll_of(path: Path, frames: int) -> np.ndarray:
    """The roll in a written file, padded with silence to `frames` (reading drops the tail)."""
    roll = read_midi_roll(path, frames_per_quarter=2).roll
    padded = np.zeros((frames, 88), dtype=bool)
    padded[:len(roll)] = roll
    return padded


@pytest.mark.parametrize("primer_in_output", [True, False])
def test_the_primer_leads_the_output_unless_asked_not_to(tmp_path, primer_in_output):
    run = make_run(tmp_path / "run", output_bias=-3.0)
    primer_path = write_midi(tmp_path / "primer.mid", [{"notes": scale(60)}])  # 8 quarters
    primer_roll = read_midi_roll(primer_path, frames_per_quarter=2).roll[:10]
    report = sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(frames=24, seed=4, primer=primer_path, primer_frames=10, primer_in_output=primer_in_output))
    model = load_model(run / "best.pt")[0]
    continuation = sample.generate(model, 1, 24, seed=4, primer=primer_roll)[0]
    assert report.primer_frames == 10
    if primer_in_output:
        expected = np.concatenate([primer_roll, continuation])
    else:
        expected = continuation
    assert report.results[0].frames == len(expected)
    np.testing.assert_array_equal(_roll_of(report.results[0].path, len(expected)), expected)


def _notes_pretty_midi(path):
    midi = pretty_midi.PrettyMIDI(str(path))
    return sorted((n.pitch, midi.time_to_tick(n.start), midi.time_to_tick(n.end))
                  for instrument in midi.instruments for n in instrument.notes)


def _notes_mido(path):
    notes, sounding = [], {}
    for track in mido.MidiFile(str(path)).tracks:
        now = 0
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                sounding[message.note] = now
            elif message.type in ("note_off", "note_on"):
                notes.append((message.note, sounding.pop(message.note), now))
    assert not sounding
    return sorted(notes)


def _notes_symusic(path):
    score = symusic.Score(str(path), ttype="tick")
    return sorted((n.pitch, n.time, n.time + n.duration) for t in score.tracks for n in t.notes)


def test_written_midi_reads_back_the_same_in_pretty_midi_mido_and_symusic(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-2.5, median_qpm=93.0)
    report = sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(frames=48, seed=1, program=40, velocity=64))
    path = report.results[0].path
    roll = _roll_of(path, 48)
    ticks_per_frame = TICKS_PER_QUARTER // 2
    expected = sorted((pitch, start * ticks_per_frame, end * ticks_per_frame)
                      for pitch, start, end in roll_to_notes(roll))
    assert len(expected) == report.results[0].statistics["notes"] > 5
    assert _notes_mido(path) == expected
    assert _notes_symusic(path) == expected
    from_pretty_midi = _notes_pretty_midi(path)
    assert [n[0] for n in from_pretty_midi] == [n[0] for n in expected]
    assert np.abs(np.array(from_pretty_midi) - np.array(expected)).max() <= 1  # within a tick
    midi = pretty_midi.PrettyMIDI(str(path))
    assert midi.instruments[0].program == 40
    assert {n.velocity for n in midi.instruments[0].notes} == {64}
    assert midi.get_tempo_changes()[1][0] == pytest.approx(93.0, rel=1e-3)  # the run's median


@pytest.mark.parametrize("frames_per_quarter,bars,expected", [(2, 3, 24), (1, 3, 12),
                                                              (None, 3, 12), (2, None, 128)])
def test_bars_count_four_quarters_on_the_runs_grid(tmp_path, frames_per_quarter, bars, expected):
    run = make_run(tmp_path / "run", frames_per_quarter=frames_per_quarter, median_qpm=None,
                   output_bias=-3.0)
    report = sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(bars=bars))
    assert report.results[0].frames == expected
    assert report.qpm == 120.0  # no source tempo stored: the MIDI default


def test_the_run_trained_last_is_used_without_a_run(tmp_path, monkeypatch):
    make_run(tmp_path / "runs" / "only", output_bias=-3.0)
    monkeypatch.chdir(tmp_path)
    report = sample.sample_to_midi(None, "out.mid", SampleConfig(frames=8))
    assert report.run_dir.name == "only" and (tmp_path / "out.mid").is_file()


def test_statistics_table_ends_with_the_training_corpus(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-3.0)
    report = sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(n=2, frames=16))
    table = sample.statistics_table(report.results, report.train_stats)
    assert [column.header for column in table.columns] == ["measure", "out-1.mid", "out-2.mid", "mean of 2",
                                                           "training corpus"]
    rows = {cells[0]: list(cells[1:]) for cells in zip(*(column.cells for column in table.columns))}
    assert rows["frames"] == ["16", "16", "32", f"{report.train_stats['frames']:,}"]
    polyphony = [report.results[i].statistics["polyphony"] for i in range(2)]
    assert rows["polyphony"][2] == f"{sum(polyphony) / 2:.2f}"
    assert set(rows) >= {"pitch-class entropy", "scale", "in key", "empty beats", "groove"}
    console = Console(record=True, width=80)
    console.print(table)
    assert "…" not in console.export_text()  # nothing cut on a narrow terminal
    assert len(sample.statistics_table(report.results, None).columns) == 4


# ---------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize("text,key", [("C", (0, False)), ("f# minor", (6, True)), ("Bb", (10, False)),
                                      ("Ebm", (3, True)), ("b", (11, False)), ("bm", (11, True)),
                                      ("A MINOR", (9, True)), ("H", None), ("C dorian", None), ("", None)])
def test_key_names_are_read_as_lead_sheets_write_them(text, key):
    assert parse_key(text) == key
    if key is not None:
        assert parse_key(key_name(*key)) == key


def test_the_key_bias_lowers_exactly_the_keys_outside_the_key():
    model = random_model()
    bias = sample.key_logit_bias(model, (0, False), 1.5)  # C major: the white keys stay
    pitches = 21 + np.arange(88)
    white = np.isin(pitches % 12, [0, 2, 4, 5, 7, 9, 11])
    np.testing.assert_array_equal(bias.numpy(), np.where(white, 0.0, -1.5).astype(np.float32))
    # A minor key keeps its raised sixth and seventh (F# and G# in A minor): only Bb, C# and D#
    # are outside it.
    outside = sample.key_logit_bias(model, (9, True), 1.0).numpy() < 0
    assert set(pitches[outside] % 12) == {10, 1, 3}


@pytest.mark.parametrize("head", ["bernoulli", "nade"])
def test_the_key_bias_enters_each_draw_before_the_temperature(head):
    torch.manual_seed(0)
    model = NextStepModel("gru", 12, head=head)
    bias = sample.key_logit_bias(model, (1, False), 0.7)  # Db major: the lowest key, an A, is outside it
    assert float(bias[0]) == pytest.approx(-0.7)
    _, plain = sample.generate_with_probabilities(model, 3, 1, temperature=0.8, seed=5)
    _, keyed = sample.generate_with_probabilities(model, 3, 1, temperature=0.8, seed=5, logit_bias=bias)
    # The first frame's lowest key has nothing below it, so for either head its probability is
    # sigmoid((logit + bias) / T) of the same logit.
    logit = torch.logit(torch.from_numpy(plain[:, 0, 0]).double()) * 0.8
    expected = torch.sigmoid((logit + float(bias[0])) / 0.8).numpy()
    np.testing.assert_allclose(keyed[:, 0, 0], expected, rtol=1e-5)
    if head == "bernoulli":  # every key is independent: the whole frame follows the same rule
        logits = torch.logit(torch.from_numpy(plain[:, 0]).double()) * 0.8
        np.testing.assert_allclose(keyed[:, 0], torch.sigmoid((logits + bias.double()) / 0.8).numpy(),
                                   rtol=1e-5)


def test_a_strong_key_keeps_every_note_in_it_and_no_key_does_not(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-2.0)
    model = load_model(run / "best.pt")[0]
    in_key = np.isin((21 + np.arange(88)) % 12, sorted(key_pitch_classes(7, False)))  # G major

    def share_in_key(rolls):
        return rolls[..., in_key].sum() / rolls.sum()

    assert share_in_key(sample.generate(model, 4, 64, seed=1)) < 0.8  # a random model plays anything
    strict = sample.generate(model, 4, 64, seed=1, logit_bias=sample.key_logit_bias(model, (7, False), 30.0))
    assert strict.sum() > 0 and share_in_key(strict) == 1.0


def test_the_key_is_written_into_the_midi_and_named_on_the_console(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-3.0)
    settings = SampleConfig(frames=16, key="F# minor")
    report = sample.sample_to_midi(run, tmp_path / "out.mid", settings)
    assert report.key == (6, True)
    signatures = pretty_midi.PrettyMIDI(str(tmp_path / "out.mid")).key_signature_changes
    assert [s.key_number for s in signatures] == [6 + 12]  # pretty_midi: 12-23 are the minor keys
    assert sample.describe_key(report, settings).startswith("key F# minor: notes outside it")
    plain = sample.sample_to_midi(run, tmp_path / "plain.mid", SampleConfig(frames=16))
    assert plain.key is None and sample.describe_key(plain, SampleConfig()) is None
    assert not pretty_midi.PrettyMIDI(str(tmp_path / "plain.mid")).key_signature_changes


def test_the_sample_page_names_the_key(tmp_path, monkeypatch):
    from seqgate.music import page

    monkeypatch.setattr(page, "render_players", lambda paths, soundfont=None: ({}, "not needed here"))
    run = make_run(tmp_path / "run", output_bias=-3.0)
    keyed = sample.sample_to_midi(run, tmp_path / "keyed.mid", SampleConfig(frames=8, key="Bb"))
    plain = sample.sample_to_midi(run, tmp_path / "plain.mid", SampleConfig(frames=8))
    assert "held to Bb major (--key)" in page.write_sample_page(keyed, tmp_path / "keyed.html")[0].read_text()
    assert "held to" not in page.write_sample_page(plain, tmp_path / "plain.html")[0].read_text()


def test_key_auto_takes_the_primers_key(tmp_path):
    run = make_run(tmp_path / "run", output_bias=-3.0)
    primer = write_midi(tmp_path / "primer.mid", [{"notes": scale(62)}])  # D major
    settings = SampleConfig(frames=16, primer=primer, key="auto")
    report = sample.sample_to_midi(run, tmp_path / "out.mid", settings)
    assert report.key == (2, False)
    assert "(estimated from the primer)" in sample.describe_key(report, settings)
    late = write_midi(tmp_path / "late.mid", [{"notes": [(62, 2.0, 3.0)]}])  # silent for 2 quarters
    with pytest.raises(UserError, match="no notes to take a key from"):
        sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(frames=16, primer=late, primer_frames=2,
                                                                      key="auto"))


# ---------------------------------------------------------------------------------------------
# User errors


@pytest.mark.parametrize("options,message", [
    ({"frames": 0}, "--frames"),
    ({"bars": -1}, "--bars"),
    ({"n": 0}, "-n"),
    ({"temperature": 0.0}, "--temperature"),
    ({"temperature": float("nan")}, "--temperature"),
    ({"program": 128}, "--program"),
    ({"velocity": 0}, "--velocity"),
    ({"velocity": 128}, "--velocity"),
    ({"qpm": 0}, "--qpm"),
    ({"max_polyphony": 0}, "--max-polyphony"),
    ({"primer_frames": 0}, "--primer-frames"),
    ({"key": "H"}, "names no key"),
    ({"key": "auto"}, "takes the key of the --primer"),
    ({"key_strength": 1.0}, "only with --key"),
    ({"key": "C", "key_strength": -1.0}, "--key-strength"),
    ({"key": "C", "key_strength": float("inf")}, "--key-strength"),
])
def test_bad_options_are_user_errors(tmp_path, options, message):
    run = make_run(tmp_path / "run")
    with pytest.raises(UserError, match=message):
        sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(**options))
    assert not (tmp_path / "out.mid").exists()


def test_no_trained_run_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no trained run"):
        sample.sample_to_midi(None, "out.mid")


def test_missing_or_unreadable_primer_is_a_user_error(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(UserError, match="no such file"):
        sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(primer=tmp_path / "absent.mid"))
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"not a midi file at all")
    with pytest.raises(UserError, match="primer .*garbage.mid"):
        sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(primer=garbage))
    silent = write_midi(tmp_path / "silent.mid", [{"notes": []}])
    with pytest.raises(UserError, match="no notes"):
        sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(primer=silent))


def test_primer_for_a_run_with_another_key_range_is_a_user_error(tmp_path):
    run = make_run(tmp_path / "run", lowest_pitch=36)
    primer = write_midi(tmp_path / "primer.mid", [{"notes": scale(60)}])
    with pytest.raises(UserError, match="cannot prime"):
        sample.sample_to_midi(run, tmp_path / "out.mid", SampleConfig(primer=primer))


def test_unwritable_output_folder_is_a_user_error(tmp_path):
    run = make_run(tmp_path / "run")
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with pytest.raises(UserError, match="output folder"):
        sample.sample_to_midi(run, blocker / "out.mid", SampleConfig(frames=8))


def test_generate_rejects_a_primer_of_the_wrong_width():
    with pytest.raises(UserError, match="primer"):
        sample.generate(random_model(), 1, 4, primer=np.zeros((3, 60), dtype=bool))
