"""Listening to MIDI: render a file to a stereo WAV through a General MIDI SoundFont.

Why: a sample's statistics (notes per frame, pitch range) say little about whether it sounds like
music; listening does, and most people cannot hear a .mid file without a synthesiser set up. This
is the end of the pipeline's last arrow: samples -> ears.

The synthesiser is midirenderer (a binding of rustysynth, a General MIDI SoundFont synthesiser):
one self-contained wheel with no requirements, so `pip install .` brings it. Measured against the
synthesiser seqgate used before (TinySoundFont, whose package requires pyaudio and so needed
`pip install --no-deps`) on TimGM6mb, A2, C4, A4 and A5 on piano, electric piano, guitar, violin
and flute: every one within 0.5 Hz of it, and within a few cents of true pitch where the
SoundFont's own samples are (tests/test_audio.py checks A4 by FFT). symusic's synthesiser was
measured unusable: 0.6.0 cannot hand rendered audio back to Python, and 0.5.9 ignores the
generator overridingRootKey, playing TimGM6mb's piano A4 at 1648 Hz. pyfluidsynth plays right
but needs the system FluidSynth library.

midirenderer plays a MIDI file exactly as written, at 48 kHz into 16-bit samples, and stops at
its end; so the file is first rewritten with mido (_playable_midi: tracks merged, note-ons last
at an instant, volumes lowered for headroom, a release tail), and the render is trimmed of its
silent end and scaled to full scale. Programs, controllers (sustain pedal, volume), pitch bends
and the General MIDI drum kit on channel 10 reach the synthesiser as the file has them.

The SoundFont is always a file already on this machine: nothing is downloaded at run time, which
an offline machine, CI and a test could not do. Where it comes from, in order: --soundfont,
$SEQGATE_SOUNDFONT, the usual system places, and last the small GM SoundFont (TimGM6mb, 6 MB) that
pretty_midi ships inside its package. Compressed .sf3 SoundFonts are refused: the synthesiser
reads .sf2 only.

midirenderer and mido are imported inside the functions: every other command starts faster
without them, and seqgate works without midirenderer (it has wheels only for Linux x86_64, macOS
and Windows x86_64; see AUDIO_INSTALL_HINT).
"""

from __future__ import annotations

import glob
import importlib.util
import io
import os
import wave
from pathlib import Path

import numpy as np

from seqgate.errors import UserError
from seqgate.files import atomic_write

SOUNDFONT_ENV = "SEQGATE_SOUNDFONT"
# Where packaged General MIDI SoundFonts land, most common first: Debian/Ubuntu's
# fluid-soundfont-gm and its default-GM alternatives link, then Fedora/Arch, then hand installs.
# Entries may hold ~ and glob patterns.
SYSTEM_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/FluidR3_GM.sf2",
    "/usr/local/share/soundfonts/*.sf2",
    "~/.local/share/soundfonts/*.sf2",
)
PRETTY_MIDI_SOUNDFONT = "TimGM6mb.sf2"
SAMPLE_RATE = 48_000  # midirenderer's one rate
# midirenderer ships wheels for these platforms only (and no source): elsewhere pyproject.toml
# leaves it out, and rendering says so.
AUDIO_INSTALL_HINT = ("pip install 'midirenderer>=0.1.3,<0.2' (wheels for Linux x86_64, macOS and "
                      "Windows x86_64)")

# After the last event, notes ring out with their release for at most this long, and the render
# is cut after the last block louder than SILENCE (about -80 dB): a slow pad should fade, not be
# cut, but a piece should not end in a second of silence.
MAX_RELEASE_SECONDS = 1.0
RELEASE_BLOCK_SECONDS = 0.05
SILENCE = 1e-4
# The whole piece is held in memory (to scale it by its peak): 30 minutes at 48 kHz is about
# 0.35 GB of 16-bit samples, twice that while the rendered file is read. A stranger's file whose
# last event lies days away must not ask for more.
MAX_MINUTES = 30
# The synthesiser writes 16-bit samples and clips what sums past full scale. Every channel's
# volume (CC7) is therefore scaled by this (12 dB down: GM's gain is 40 log10(CC7 / 127) dB) and
# the piece scaled back up by its peak, so a dense chord is made quieter, not clipped.
VOLUME_SCALE = 0.5
GM_DEFAULT_VOLUME = 100  # a channel's CC7 before the file sets one
VOLUME_CONTROLLER = 7
# Compressed audio, by suffix: (libsndfile's format, subtype), written through soundfile (which
# ships libsndfile inside its wheel). MP3 plays in every browser; the report pages use it.
# (Ogg Vorbis is left out: libsndfile 1.2.2 crashed writing a rendered piece.)
AUDIO_FORMATS = {".mp3": ("MP3", "MPEG_LAYER_III"), ".flac": ("FLAC", "PCM_16")}
# A preview (the report pages' players): mono MP3 at libsndfile's compression level 0.9, a third
# of the stereo default's size and encoded in a third of its time (0.76 s against 2.2 s for 48 s
# of a sampled chorale on the project's 2-core CPU).
PREVIEW_COMPRESSION = 0.9
# What a GM synthesiser acts on; the rest (aftertouch, SysEx, clock, other meta events) changes no
# sound this one makes. Tempo changes are kept: the rewritten file keeps the original's ticks.
_PLAYED = frozenset({"note_on", "note_off", "program_change", "control_change", "pitchwheel"})


def pretty_midi_soundfont() -> Path | None:
    """The GM SoundFont inside the installed pretty_midi package, or None.

    Found without importing pretty_midi, which would pull in its whole MIDI stack for one path."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / PRETTY_MIDI_SOUNDFONT
    return path if path.is_file() else None


def _system_soundfont() -> Path | None:
    for place in SYSTEM_SOUNDFONTS:
        for candidate in sorted(glob.glob(os.path.expanduser(place))):
            if os.path.isfile(candidate):
                return Path(candidate)
    return None


def find_soundfont(explicit: str | os.PathLike | None = None) -> Path:
    """The SoundFont to render with: `explicit` (--soundfont), else $SEQGATE_SOUNDFONT, else the
    first General MIDI SoundFont in SYSTEM_SOUNDFONTS, else pretty_midi's TimGM6mb.sf2."""
    # A path the user named is never silently replaced by another: a typo should say so.
    for named, origin in ((explicit, "--soundfont"), (os.environ.get(SOUNDFONT_ENV) or None, SOUNDFONT_ENV)):
        if named is not None:
            path = Path(named).expanduser()
            if not path.is_file():
                raise UserError(f"no SoundFont file at {path} (from {origin})")
            return path
    found = _system_soundfont() or pretty_midi_soundfont()
    if found is None:
        raise UserError("no General MIDI SoundFont found: install one (e.g. apt-get install "
                        f"fluid-soundfont-gm), pass --soundfont PATH or set {SOUNDFONT_ENV}")
    return found


def check_can_render(soundfont: str | os.PathLike | None = None) -> Path:
    """The SoundFont render_wav will use, once the synthesiser is known to be installed and to load
    it. For callers with long work before rendering (sampling), so a missing piece fails first."""
    soundfont = find_soundfont(soundfont)
    _render(soundfont, _one_note_midi())
    return soundfont


def render_wav(midi_path: str | os.PathLike, wav_path: str | os.PathLike | None = None,
               soundfont: str | os.PathLike | None = None, preview: bool = False) -> Path:
    """Render `midi_path` to stereo audio at SAMPLE_RATE, scaled to full scale: a 16-bit WAV, or
    by the output's suffix an AUDIO_FORMATS file (default: beside the MIDI file, suffix .wav);
    return its path. preview: a compressed file as a page's player wants it (mono, smaller)."""
    midi_path = Path(midi_path)
    wav_path = Path(wav_path) if wav_path is not None else midi_path.with_suffix(".wav")
    if not midi_path.is_file():
        raise UserError(f"no MIDI file at {midi_path}")
    if wav_path.resolve() == midi_path.resolve():
        raise UserError(f"{wav_path} is the MIDI file itself: choose another output path")
    suffix = wav_path.suffix.lower()
    if suffix != ".wav" and suffix not in AUDIO_FORMATS:
        raise UserError(f"cannot write {wav_path}: the audio formats are .wav, "
                        + ", ".join(AUDIO_FORMATS))
    soundfont = find_soundfont(soundfont)
    playable, last_event_seconds = _playable_midi(midi_path)
    audio = _trim_release(_render(soundfont, playable), last_event_seconds)
    if suffix == ".wav":
        _write_wav(wav_path, audio)
    else:
        _write_compressed(wav_path, audio, *AUDIO_FORMATS[suffix], preview=preview)
    return wav_path


def _one_line(error: Exception) -> str:
    message = " ".join(str(error).split())
    return message.rstrip("!.") or type(error).__name__


def _is_note_on(message) -> bool:
    return message.type == "note_on" and message.velocity > 0


def _playable_midi(midi_path: Path) -> tuple[bytes, float]:
    """The file rewritten for the synthesiser, and the time of its last event in seconds.

    The synthesiser plays a file exactly as written, and stops at its end. So: every track merged
    into one, in tick order; at one tick, note-ons last (a key re-struck at the instant it is
    released would otherwise be released right after its new attack, and a program change or
    volume set at a note's own tick, often in another track, applies to that note); channel
    volumes scaled by VOLUME_SCALE; and the end MAX_RELEASE_SECONDS after the last event, so that
    the last notes ring out."""
    import mido

    try:
        # clip=True: a stray data byte above 127 is clamped rather than refusing the whole file.
        midi = mido.MidiFile(str(midi_path), clip=True)
        last_event_seconds = 0.0
        seconds = 0.0
        for message in midi:  # every track merged; .time is seconds since the previous message
            seconds += message.time
            if message.type in _PLAYED:
                last_event_seconds = seconds
        events, has_notes = [], False
        for track in midi.tracks:
            tick = 0
            for message in track:
                tick += message.time
                if message.type in _PLAYED or message.type == "set_tempo":
                    events.append((tick, _is_note_on(message), message))
                    has_notes = has_notes or _is_note_on(message)
    except Exception as error:  # mido's parser raises OSError, EOFError, ValueError, KeyError, ...
        raise UserError(f"cannot read {midi_path} as MIDI ({_one_line(error)})") from None
    if not has_notes:
        raise UserError(f"{midi_path} has no notes to render")
    minutes = last_event_seconds / 60
    if minutes > MAX_MINUTES:
        raise UserError(f"{midi_path} lasts {minutes:,.0f} minutes; seqgate renders at most {MAX_MINUTES}")
    events.sort(key=lambda event: (event[0], event[1]))  # stable: the file's order otherwise

    track = mido.MidiTrack(mido.Message("control_change", channel=channel, control=VOLUME_CONTROLLER,
                                        value=round(GM_DEFAULT_VOLUME * VOLUME_SCALE)) for channel in range(16))
    now, tempo = 0, 500_000  # MIDI's default: 120 quarter notes a minute
    for tick, _, message in events:
        if message.type == "set_tempo":
            tempo = message.tempo
        elif message.type == "control_change" and message.control == VOLUME_CONTROLLER:
            message = message.copy(value=round(message.value * VOLUME_SCALE))
        track.append(message.copy(time=tick - now))
        now = tick
    tail = round(mido.second2tick(MAX_RELEASE_SECONDS, midi.ticks_per_beat, tempo))
    track.append(mido.MetaMessage("end_of_track", time=tail))
    playable = mido.MidiFile(type=0, ticks_per_beat=midi.ticks_per_beat)
    playable.tracks.append(track)
    buffer = io.BytesIO()
    playable.save(file=buffer)
    return buffer.getvalue(), last_event_seconds


def _one_note_midi() -> bytes:
    import mido

    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=69, velocity=64, time=0),
                                       mido.Message("note_off", note=69, time=48)]))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _render(soundfont: Path, midi_bytes: bytes) -> np.ndarray:
    """(samples, 2) int16 at SAMPLE_RATE: midirenderer (rustysynth, a General MIDI synthesiser:
    every channel starts on the piano, channel 10 on the drum kit) playing `midi_bytes`."""
    try:
        import midirenderer
    except ImportError:
        raise UserError(f"rendering audio needs the midirenderer package: {AUDIO_INSTALL_HINT}") from None
    if soundfont.suffix.lower() == ".sf3":
        raise UserError(f"cannot load SoundFont {soundfont}: compressed .sf3 SoundFonts are not "
                        f"supported by the synthesiser, use an .sf2 one")
    try:
        rendered = midirenderer.render_wave_from(soundfont.read_bytes(), midi_bytes)
    except OSError as error:
        raise UserError(f"cannot read SoundFont {soundfont} ({error.strerror or error})") from None
    except (RuntimeError, ValueError) as error:  # our MIDI is checked: what fails is the SoundFont
        raise UserError(f"cannot load SoundFont {soundfont} ({_one_line(error)})") from None
    with wave.open(io.BytesIO(rendered)) as wav:
        if (wav.getsampwidth(), wav.getnchannels(), wav.getframerate()) != (2, 2, SAMPLE_RATE):
            raise UserError(f"the synthesiser wrote {wav.getnchannels()} channels of "
                            f"{8 * wav.getsampwidth()}-bit samples at {wav.getframerate()} Hz, "
                            f"not 16-bit stereo at {SAMPLE_RATE}: a midirenderer this version does not know")
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype="<i2").reshape(-1, 2)


def _trim_release(audio: np.ndarray, last_event_seconds: float) -> np.ndarray:
    """`audio` cut after the last RELEASE_BLOCK_SECONDS block past the last event that is louder
    than SILENCE (relative to the piece's peak)."""
    block = round(RELEASE_BLOCK_SECONDS * SAMPLE_RATE)
    start = min(len(audio), round(last_event_seconds * SAMPLE_RATE))
    tail = np.abs(audio[start:].astype(np.int32)).max(axis=1)
    peak = max(1, _peak(audio))
    loud = np.flatnonzero(tail > SILENCE * peak)
    end = start + (0 if not len(loud) else (int(loud[-1]) // block + 1) * block)
    return audio[:min(end, len(audio))]


def _peak(audio: np.ndarray) -> int:
    """The largest |sample| (no copy of the piece: np.abs would make one, and wrap at -32768)."""
    return max(int(audio.max()), -int(audio.min())) if audio.size else 0


def _write_wav(path: Path, audio: np.ndarray) -> None:
    """(samples, 2) int16 -> a 16-bit PCM WAV scaled to full scale, written atomically."""
    peak = _peak(audio)
    gain = 32767 / peak if peak else 1.0
    with atomic_write(path, "wb") as handle, wave.open(handle, "wb") as wav:
        wav.setnchannels(audio.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        chunk = 1 << 20  # scaled a chunk at a time: a float copy of a long piece is hundreds of MB
        for first in range(0, len(audio), chunk):
            scaled = np.rint(audio[first:first + chunk] * gain).clip(-32768, 32767).astype("<i2")
            wav.writeframes(scaled.tobytes())  # row-major (samples, channels) is WAV's L R L R ...


def _write_compressed(path: Path, audio: np.ndarray, format_name: str, subtype: str, preview: bool) -> None:
    """(samples, 2) int16 -> a compressed file at full scale, written atomically."""
    try:
        import soundfile
    except ImportError:
        raise UserError(f"writing {path.suffix} audio needs the soundfile package: pip install soundfile") from None
    # floats in [-1, 1], 1 dB below full scale: a lossy codec's output overshoots its input
    peak = _peak(audio)
    scaled = audio * np.float32(0.9 / peak if peak else 1 / 32768)
    options = {}
    if preview:
        scaled = scaled.mean(axis=1)
        options["compression_level"] = PREVIEW_COMPRESSION
    with atomic_write(path, "wb") as handle:
        try:
            soundfile.write(handle, scaled, SAMPLE_RATE, format=format_name, subtype=subtype, **options)
        except (RuntimeError, TypeError, ValueError) as error:  # libsndfile lacks the format
            raise UserError(f"cannot write {path} ({_one_line(error)})") from None
