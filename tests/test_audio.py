"""seqgate render and sample --wav: MIDI -> WAV through a SoundFont already on the machine, read back
with `wave` and checked by ear's proxies: timing, pitch, attacks, loudness."""

from __future__ import annotations

import sys
import wave

import numpy as np
import pytest

from conftest import assert_one_line_error, make_tiny_dataset, run_cli, write_midi
from seqgate.music import audio
from seqgate.music.audio import check_can_render, find_soundfont, pretty_midi_soundfont, render_wav
from seqgate.errors import UserError

RATE = audio.SAMPLE_RATE
# At conftest's 120 quarter notes a minute a beat lasts 0.5 s: a C major chord from 0.5 s to 1.5 s.
CHORD = [(60, 1, 3), (64, 1, 3), (67, 1, 3)]
FIRST_NOTE_SECONDS, LAST_NOTE_OFF_SECONDS = 0.5, 1.5
A4 = 69  # 440 Hz


def read_wav(path):
    """(channels, sample width in bytes, frame rate, samples as (frames, channels) int16)."""
    with wave.open(str(path), "rb") as wav:
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), frames.reshape(-1, wav.getnchannels())


def render(tmp_path, name, tracks, soundfont):
    """Write `tracks` (conftest.write_midi's form) to NAME.mid, render it, return the samples."""
    midi = write_midi(tmp_path / f"{name}.mid", tracks)
    return read_wav(render_wav(midi, soundfont=soundfont))[3].astype(float)


def seconds(start, end):
    return slice(int(start * RATE), int(end * RATE))


@pytest.fixture(scope="module")
def soundfont():
    """pretty_midi's TimGM6mb.sf2 with midirenderer to play it; else skip, saying why."""
    pytest.importorskip("midirenderer", reason=f"midirenderer is not installed ({audio.AUDIO_INSTALL_HINT})")
    path = pretty_midi_soundfont()
    if path is None:
        pytest.skip("pretty_midi's TimGM6mb.sf2 is not installed: no SoundFont to render with")
    return path


def test_render_writes_stereo_16_bit_audio_that_follows_the_notes(tmp_path, soundfont):
    midi = write_midi(tmp_path / "chord.mid", [{"notes": CHORD}])

    wav_path = render_wav(midi, soundfont=soundfont)

    assert wav_path == tmp_path / "chord.wav"
    channels, width, rate, samples = read_wav(wav_path)
    assert (channels, width, rate) == (2, 2, RATE)
    duration = len(samples) / RATE
    # The release rings on after the last note-off, for at most MAX_RELEASE_SECONDS.
    assert LAST_NOTE_OFF_SECONDS + 0.05 <= duration <= LAST_NOTE_OFF_SECONDS + audio.MAX_RELEASE_SECONDS + 0.06
    loudness = np.abs(samples.astype(np.int32)).max(axis=1)
    assert loudness[: int((FIRST_NOTE_SECONDS - 0.05) * RATE)].max() < 50, "sound before the first note"
    # Sounding all through the (decaying) chord: a file read in the wrong time unit would stretch or
    # shift it.
    for start in np.arange(FIRST_NOTE_SECONDS + 0.05, LAST_NOTE_OFF_SECONDS - 0.1, 0.1):
        assert loudness[int(start * RATE): int((start + 0.1) * RATE)].max() > 300, f"silent near {start:.2f} s"
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was left behind"


def test_tempo_changes_move_the_notes(tmp_path, soundfont):
    # Beats 0-2 at 120 quarter notes a minute take 1 s, then 60 a minute: beat 3 falls at 2 s. Read
    # without the tempo change it would fall at 1.5 s.
    midi = write_midi(tmp_path / "slow.mid", [{"notes": [(60, 3, 4)]}], tempos=((0, 120.0), (2, 60.0)))

    samples = read_wav(render_wav(midi, soundfont=soundfont))[3].astype(float)

    loudness = np.abs(samples).max(axis=1)
    assert loudness[seconds(0, 1.95)].max() < 50, "sound before the note"
    assert loudness[seconds(2.0, 2.1)].max() > 300, "no note at 2 s"


def fundamental(samples):
    """The lowest spectral peak within 1/5 of the strongest: the fundamental of one note, in Hz."""
    signal = samples[:, 0]
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    frequencies = np.fft.rfftfreq(len(signal), 1 / RATE)
    spectrum[frequencies < 60] = 0  # below any note played here; keeps a DC offset out
    return frequencies[spectrum > 0.2 * spectrum.max()].min()


@pytest.mark.parametrize("program", [
    0,   # acoustic grand piano: symusic 0.5.9 played this A4 at 1648 Hz, 23 semitones sharp
    4,   # electric piano: +24.7 semitones there
    24,  # nylon guitar: +17.7
    40,  # violin: +18.6
    73,  # flute: tuned in its sample headers, right there too
])
def test_a_held_a4_sounds_at_440_hz(tmp_path, soundfont, program):
    """TimGM6mb tunes most presets with the generator overridingRootKey; a synthesiser that ignores
    it (symusic's) plays them octaves off."""
    samples = render(tmp_path, "a4", [{"notes": [(A4, 0, 2)], "program": program}], soundfont)  # 0-1 s

    measured = fundamental(samples[seconds(0.1, 0.9)])

    semitones_off = 12 * np.log2(measured / 440)
    assert abs(semitones_off) < 1, f"A4 sounds at {measured:.0f} Hz, {semitones_off:+.1f} semitones off"


def rms_envelope(samples, start, end, window=0.02):
    """RMS of the left channel in `window`-second steps from `start` to `end` seconds."""
    return np.array([np.sqrt(np.mean(samples[seconds(t, t + window), 0] ** 2))
                     for t in np.arange(start, end - window / 2, window)])


def test_a_re_struck_note_is_attacked_again(tmp_path, soundfont):
    """Two A4 quarter notes in a row (0-0.5 s, 0.5-1 s) are two attacks, not one held note: the
    decaying piano gets loud again just after 0.5 s."""
    struck_twice = render(tmp_path, "twice", [{"notes": [(A4, 0, 1), (A4, 1, 2)]}], soundfont)
    held = render(tmp_path, "held", [{"notes": [(A4, 0, 2)]}], soundfont)

    for samples, rises in ((struck_twice, True), (held, False)):  # the held note shows the check can fail
        before, after = rms_envelope(samples, 0.40, 0.50), rms_envelope(samples, 0.50, 0.62)
        assert (after.max() > 2 * before[-1]) == rises, (before.round(), after.round())


def _hi_hat_without_program_change(path):
    """Key 42 on channel 10 for one beat, and no program change: the drum kit is the channel's own."""
    import mido

    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=42, velocity=80, channel=9, time=0),
                                       mido.Message("note_off", note=42, channel=9, time=480)]))
    midi.save(str(path))
    return path


@pytest.mark.parametrize("program_change", [True, False])
def test_channel_10_plays_the_drum_kit(tmp_path, soundfont, program_change):
    # Key 42 is the closed hi-hat on a GM drum channel, F#2 (92 Hz) on a piano.
    def spectral_centroid(samples):
        spectrum = np.abs(np.fft.rfft(samples[:, 0]))
        return (spectrum * np.fft.rfftfreq(len(samples), 1 / RATE)).sum() / spectrum.sum()

    if program_change:
        drums = render(tmp_path, "hihat", [{"notes": [(42, 0, 1)], "drum": True}], soundfont)
    else:
        midi = _hi_hat_without_program_change(tmp_path / "hihat.mid")
        drums = read_wav(render_wav(midi, soundfont=soundfont))[3].astype(float)
    piano = render(tmp_path, "piano", [{"notes": [(42, 0, 1)]}], soundfont)

    assert np.abs(drums).max() > 300, "the drum channel is silent"
    assert spectral_centroid(drums) > 3000 and spectral_centroid(piano) < 1500


def test_loud_chords_are_scaled_down_not_clipped(tmp_path, soundfont):
    # Nine tracks doubling one 13-note chord add up in phase: about 2.7x full scale with TimGM6mb.
    chord = [(pitch, 0, 2) for pitch in range(36, 85) if pitch % 12 in (0, 4, 7)]
    midi = write_midi(tmp_path / "loud.mid", [{"notes": chord}] * 9)

    _, _, _, samples = read_wav(render_wav(midi, tmp_path / "out" / "loud.wav", soundfont))

    samples = samples.astype(np.int32)
    at_full_scale = np.count_nonzero(np.abs(samples) >= 32767)
    assert np.abs(samples).max() >= 32000, "the peak should reach full scale"
    assert at_full_scale <= 2, f"{at_full_scale} samples clipped"
    # Floats past full scale cast to int16 without care wrap around: +1.1 becomes a large negative.
    assert np.abs(np.diff(samples, axis=0)).max() < 32768, "samples wrapped around"


def test_a_file_that_is_not_midi_is_a_user_error(tmp_path):
    not_midi = tmp_path / "notes.mid"
    not_midi.write_text("not a MIDI file\n")
    with pytest.raises(UserError, match="cannot read .*notes.mid as MIDI") as caught:
        render_wav(not_midi, soundfont=_fake_soundfont(tmp_path))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "notes.wav").exists()


def test_a_midi_file_without_notes_is_a_user_error(tmp_path):
    empty = write_midi(tmp_path / "empty.mid", [{"notes": []}])
    with pytest.raises(UserError, match="no notes to render"):
        render_wav(empty, soundfont=_fake_soundfont(tmp_path))


def test_a_file_longer_than_the_limit_is_refused_before_rendering(tmp_path):
    # Beat 4000 at 120 quarter notes a minute is 33 minutes in: past MAX_MINUTES (30).
    midi = write_midi(tmp_path / "long.mid", [{"notes": [(60, 0, 1), (60, 4000, 4001)]}])
    with pytest.raises(UserError, match="lasts 33 minutes; seqgate renders at most 30"):
        render_wav(midi, soundfont=_fake_soundfont(tmp_path))


def test_a_soundfont_the_synthesiser_cannot_load_is_a_user_error(tmp_path, soundfont):
    midi = write_midi(tmp_path / "chord.mid", [{"notes": CHORD}])
    with pytest.raises(UserError, match="cannot load SoundFont .*junk.sf2") as caught:
        render_wav(midi, soundfont=_fake_soundfont(tmp_path))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "chord.wav").exists()


def test_without_midirenderer_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "midirenderer", None)  # makes `import midirenderer` fail
    midi = write_midi(tmp_path / "chord.mid", [{"notes": CHORD}])
    with pytest.raises(UserError, match="pip install 'midirenderer"):
        render_wav(midi, soundfont=_fake_soundfont(tmp_path))
    with pytest.raises(UserError, match="needs the midirenderer package"):
        check_can_render(_fake_soundfont(tmp_path))


def test_a_compressed_sf3_soundfont_is_refused_in_one_line(tmp_path, soundfont):
    sf3 = tmp_path / "font.sf3"
    sf3.write_bytes(soundfont.read_bytes())
    midi = write_midi(tmp_path / "chord.mid", [{"notes": CHORD}])
    with pytest.raises(UserError, match=r"\.sf3 SoundFonts are not supported"):
        render_wav(midi, soundfont=sf3)


def _fake_soundfont(folder):
    """A file that exists, so find_soundfont accepts it, but holds no SoundFont."""
    path = folder / "junk.sf2"
    path.write_bytes(b"not a RIFF file")
    return path


def test_find_soundfont_refuses_a_missing_explicit_path(tmp_path, monkeypatch):
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(_fake_soundfont(tmp_path)))  # never a fallback for a typo
    with pytest.raises(UserError, match="no SoundFont file at .*missing.sf2 .from --soundfont"):
        find_soundfont(tmp_path / "missing.sf2")


def test_find_soundfont_takes_the_environment_variable_after_the_option(tmp_path, monkeypatch):
    from_env = tmp_path / "env.sf2"
    from_env.write_bytes(b"")
    explicit = tmp_path / "explicit.sf2"
    explicit.write_bytes(b"")
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(from_env))

    assert find_soundfont(None) == from_env
    assert find_soundfont(explicit) == explicit

    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(tmp_path / "gone.sf2"))
    with pytest.raises(UserError, match=audio.SOUNDFONT_ENV):
        find_soundfont(None)


def test_find_soundfont_prefers_a_system_soundfont_to_pretty_midis(tmp_path, monkeypatch):
    system = tmp_path / "soundfonts" / "FluidR3_GM.sf2"
    system.parent.mkdir()
    system.write_bytes(b"")
    monkeypatch.delenv(audio.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(audio, "SYSTEM_SOUNDFONTS", (str(tmp_path / "nowhere.sf2"), str(tmp_path / "soundfonts" / "*.sf2")))
    monkeypatch.setattr(audio, "pretty_midi_soundfont", lambda: tmp_path / "pretty.sf2")

    assert find_soundfont(None) == system

    monkeypatch.setattr(audio, "SYSTEM_SOUNDFONTS", ())
    assert find_soundfont(None) == tmp_path / "pretty.sf2"


def test_find_soundfont_with_none_anywhere_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv(audio.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(audio, "SYSTEM_SOUNDFONTS", ())
    monkeypatch.setattr(audio, "pretty_midi_soundfont", lambda: None)
    with pytest.raises(UserError, match="--soundfont") as caught:
        find_soundfont(None)
    assert audio.SOUNDFONT_ENV in str(caught.value) and "\n" not in str(caught.value)


def test_cli_render_writes_the_wav_beside_the_midi_and_names_the_soundfont(tmp_path, soundfont):
    midi = write_midi(tmp_path / "x.mid", [{"notes": CHORD}])

    result = run_cli("render", midi, "--soundfont", soundfont)

    assert result.returncode == 0, result.stderr
    channels, _, rate, _ = read_wav(tmp_path / "x.wav")
    assert (channels, rate) == (2, audio.SAMPLE_RATE)
    assert "x.wav" in result.stdout and soundfont.name in result.stdout


def test_cli_render_of_a_file_that_is_not_midi_is_one_line_and_exit_code_2(tmp_path):
    not_midi = tmp_path / "x.mid"
    not_midi.write_text("hello\n")

    result = run_cli("render", not_midi, "--soundfont", _fake_soundfont(tmp_path), "-o", tmp_path / "y.wav")

    assert_one_line_error(result)
    assert "cannot read" in result.stderr and not (tmp_path / "y.wav").exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run trained for one epoch on conftest's tiny dataset: a real run folder, in a few seconds."""
    folder = tmp_path_factory.mktemp("run")
    dataset = make_tiny_dataset(folder / "tiny.npz")
    result = run_cli("train", "--data", dataset, "--max-epochs", "1", "--params", "2000", "--device", "cpu",
                     "--run-dir", folder / "gru", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "gru"


def test_cli_sample_with_wav_writes_a_wav_beside_each_midi(tmp_path, soundfont, trained_run):
    result = run_cli("sample", "--run", trained_run, "-o", tmp_path / "x.mid", "-n", "2", "--bars", "2",
                     "--wav", "--soundfont", soundfont)

    assert result.returncode == 0, result.stderr
    for name in ("x-1", "x-2"):
        channels, width, rate, samples = read_wav(tmp_path / f"{name}.wav")
        assert (channels, width, rate) == (2, 2, audio.SAMPLE_RATE)
        assert np.abs(samples).max() > 300, f"{name}.wav is silent"
        assert f"{name}.mid, " in result.stdout and f"{name}.wav" in result.stdout
    assert soundfont.name in result.stdout


def test_cli_sample_with_a_missing_soundfont_fails_before_sampling(tmp_path, trained_run):
    result = run_cli("sample", "--run", trained_run, "-o", tmp_path / "x.mid", "--wav",
                     "--soundfont", tmp_path / "missing.sf2")

    assert_one_line_error(result)
    assert "missing.sf2" in result.stderr
    assert not (tmp_path / "x.mid").exists(), "sampled before finding the SoundFont"


def test_cli_sample_with_wav_refuses_a_wav_output_name_before_sampling(tmp_path, trained_run):
    result = run_cli("sample", "--run", trained_run, "-o", tmp_path / "x.wav", "--wav")

    assert_one_line_error(result)
    assert "give -o a .mid name" in result.stderr
    assert not (tmp_path / "x.wav").exists()


def test_cli_sample_with_wav_skips_a_piece_without_notes(tmp_path, soundfont, trained_run):
    # At temperature 0.01 only keys above probability 1/2 sound, and one epoch on the tiny corpus
    # leaves every key well below it (their training frequencies): a silent piece.
    result = run_cli("sample", "--run", trained_run, "-o", tmp_path / "x.mid", "--bars", "1",
                     "--temperature", "0.01", "--wav", "--soundfont", soundfont)

    assert result.returncode == 0, result.stderr
    assert "x.mid (no notes, so no WAV)" in result.stdout
    assert (tmp_path / "x.mid").exists() and not (tmp_path / "x.wav").exists()
