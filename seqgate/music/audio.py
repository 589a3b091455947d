"""Listening to MIDI: render a file to a stereo WAV through a General MIDI SoundFont.

Why: a sample's statistics (notes per frame, pitch range) say little about whether it sounds like
music; listening does, and most people cannot hear a .mid file without a synthesiser set up. This
is the end of the pipeline's last arrow: samples -> ears.

The synthesiser is TinySoundFont (schellingb/TinySoundFont, through the `tinysoundfont` Python
binding): one small wheel, no system library. symusic, roll.py's MIDI reader, has a synthesiser
too and was tried first, but measured unusable: symusic 0.6.0 cannot hand any rendered audio back
to Python (TypeError "Unable to convert function return value", a binding bug), and 0.5.9
ignores the SoundFont generator overridingRootKey, so through TimGM6mb an A4 (440 Hz) came out at 1648 Hz on the piano (+22.9 semitones), +24.7 on the electric piano, +17.7 on the guitar
and +18.6 on the violin (strings and flute, tuned in their sample headers, were right).
TinySoundFont plays all of them at 440 Hz to within the 1.25 Hz (5 cent) resolution of the
measurement, and lets notes ring out with the SoundFont's release where symusic 0.5.9 stopped
them dead at the note-off.

The MIDI file is read with mido: every channel message in time order, in seconds with the tempo map
applied, keeping channels, so programs, controllers (sustain pedal, volume), pitch bends and the
General MIDI drum kit on channel 10 reach the synthesiser as the file has them.

The SoundFont is always a file already on this machine: nothing is downloaded at run time, which
an offline machine, CI and a test could not do. Where it comes from, in order: --soundfont,
$SEQGATE_SOUNDFONT, the usual system places, and last the small GM SoundFont (TimGM6mb, 6 MB) that
pretty_midi ships inside its package.

tinysoundfont and mido are imported inside the functions: every other command starts faster
without them, and seqgate works without tinysoundfont, which is installed on its own (its package
requires pyaudio, used only for live playback, which on Linux compiles only against PortAudio's
headers; see AUDIO_INSTALL_HINT).
"""

from __future__ import annotations

import glob
import importlib.util
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
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf3",
    "/usr/local/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/FluidR3_GM.sf2",
    "/usr/local/share/soundfonts/*.sf2",
    "~/.local/share/soundfonts/*.sf2",
    "~/.local/share/soundfonts/*.sf3",
)
PRETTY_MIDI_SOUNDFONT = "TimGM6mb.sf2"
DEFAULT_SAMPLE_RATE = 44100
# --no-deps: tinysoundfont's own wheel needs nothing, but it requires pyaudio (live playback, never
# used here), which has no Linux wheel and fails to build without PortAudio's headers.
AUDIO_INSTALL_HINT = "pip install --no-deps 'tinysoundfont>=0.3.7,<0.4'"

DRUM_CHANNEL = 9  # General MIDI's channel 10, counted from 0
DRUM_BANK = 128  # where SoundFonts keep their drum kits
# After the last event, notes ring out with their release for at most this long, and the render
# stops at the first block this quiet (about -80 dB): a slow pad should fade, not be cut, but a
# piece should not end in a second of silence.
MAX_RELEASE_SECONDS = 1.0
RELEASE_BLOCK_SECONDS = 0.05
SILENCE = 1e-4
# The whole piece is held in memory (to scale it by its peak): 30 minutes at 44.1 kHz is about
# 0.6 GB of float32 plus 0.3 GB of 16-bit samples. A stranger's file whose last event lies days
# away must not ask for more.
MAX_MINUTES = 30
_STEREO_FLOAT_BYTES = 2 * 4  # tinysoundfont writes interleaved float32 pairs
# What a GM synthesiser acts on; the rest (aftertouch, SysEx, clock, meta events) changes no sound
# this one makes, and the tempo is already in mido's seconds.
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
    _load_synthesizer(soundfont, DEFAULT_SAMPLE_RATE)
    return soundfont


def render_wav(midi_path: str | os.PathLike, wav_path: str | os.PathLike | None = None,
               soundfont: str | os.PathLike | None = None, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Path:
    """Render `midi_path` to a stereo 16-bit WAV (default: beside it, suffix .wav); return its path."""
    midi_path = Path(midi_path)
    wav_path = Path(wav_path) if wav_path is not None else midi_path.with_suffix(".wav")
    if not midi_path.is_file():
        raise UserError(f"no MIDI file at {midi_path}")
    if wav_path.resolve() == midi_path.resolve():
        raise UserError(f"{wav_path} is the MIDI file itself: choose another output path")
    soundfont = find_soundfont(soundfont)
    events = _read_events(midi_path, sample_rate)
    synthesizer = _load_synthesizer(soundfont, sample_rate)
    _write_wav(wav_path, _play(synthesizer, events, sample_rate), sample_rate)
    return wav_path


def _one_line(error: Exception) -> str:
    message = " ".join(str(error).split())
    return message.rstrip("!.") or type(error).__name__


def _read_events(midi_path: Path, sample_rate: int) -> list:
    """The file's channel messages as (sample index, mido message), in the order to play them."""
    import mido

    try:
        # clip=True: a stray data byte above 127 is clamped rather than refusing the whole file.
        midi = mido.MidiFile(str(midi_path), clip=True)
        events, seconds = [], 0.0
        for message in midi:  # every track merged; .time is seconds since the previous message
            seconds += message.time
            if message.type in _PLAYED:
                events.append((round(seconds * sample_rate), message))
    except Exception as error:  # mido's parser raises OSError, EOFError, ValueError, KeyError, ...
        raise UserError(f"cannot read {midi_path} as MIDI ({_one_line(error)})") from None
    if not any(_is_note_on(message) for _, message in events):
        raise UserError(f"{midi_path} has no notes to render")
    minutes = events[-1][0] / sample_rate / 60
    if minutes > MAX_MINUTES:
        raise UserError(f"{midi_path} lasts {minutes:,.0f} minutes; seqgate renders at most {MAX_MINUTES}")
    # At one instant, note-ons go last: a program change, bank select or volume set at a note's
    # own tick (often in another track, which the merge may put after it) applies to that note.
    # (A key re-struck at the instant it is released plays right in either order: TinySoundFont's
    # note-off releases the key's oldest voice.) sorted() is stable: the rest keeps the file's order.
    return sorted(events, key=lambda event: (event[0], _is_note_on(event[1])))


def _is_note_on(message) -> bool:
    return message.type == "note_on" and message.velocity > 0


def _load_synthesizer(soundfont: Path, sample_rate: int):
    """A tinysoundfont Synth with `soundfont` loaded, every channel on a GM piano, channel 10 on
    the standard drum kit (before any program change, as a GM module starts)."""
    try:
        import tinysoundfont
    except ImportError:
        raise UserError(f"rendering audio needs the tinysoundfont package: {AUDIO_INSTALL_HINT}") from None
    synthesizer = tinysoundfont.Synth(samplerate=sample_rate)
    try:
        soundfont_id = synthesizer.sfload(str(soundfont))
    except (RuntimeError, OSError) as error:
        raise UserError(f"cannot load SoundFont {soundfont} ({_one_line(error)})") from None
    for channel in range(16):
        drums = channel == DRUM_CHANNEL
        try:
            synthesizer.program_select(channel, soundfont_id, DRUM_BANK if drums else 0, 0, is_drums=drums)
        except RuntimeError:
            # No drum kit (or no preset 0) in this SoundFont: the channel takes what the file's
            # program changes give it, if anything.
            pass
    return synthesizer


def _play(synthesizer, events: list, sample_rate: int) -> np.ndarray:
    """Send the events at their sample indices; return (samples, 2) float32, release tail included."""
    block = max(1, round(RELEASE_BLOCK_SECONDS * sample_rate))
    last_event = events[-1][0]
    audio = np.zeros((last_event + round(MAX_RELEASE_SECONDS * sample_rate) + block, 2), dtype=np.float32)
    buffer = memoryview(audio).cast("B")  # tinysoundfont writes into it in place: no copies

    def render_until(end: int) -> None:
        nonlocal position
        span = buffer[position * _STEREO_FLOAT_BYTES: end * _STEREO_FLOAT_BYTES]
        synthesizer.generate_simple(end - position, span)
        position = end

    position = 0
    for index, message in events:
        if index > position:
            render_until(index)
        _send(synthesizer, message)
    while position < last_event + MAX_RELEASE_SECONDS * sample_rate:
        render_until(position + block)
        if np.abs(audio[position - block: position]).max() < SILENCE:
            break
    return audio[:position]


def _send(synthesizer, message) -> None:
    channel = message.channel
    if _is_note_on(message):
        synthesizer.noteon(channel, message.note, message.velocity)
    elif message.type in ("note_on", "note_off"):  # note_on at velocity 0 is a note-off
        synthesizer.noteoff(channel, message.note)
    elif message.type == "program_change":
        try:
            synthesizer.program_change(channel, message.program, is_drums=channel == DRUM_CHANNEL)
        except RuntimeError:
            pass  # a program this SoundFont lacks: the channel keeps the instrument it had
    elif message.type == "control_change":
        synthesizer.control_change(channel, message.control, message.value)
    elif message.type == "pitchwheel":
        synthesizer.pitchbend(channel, message.pitch + 8192)  # mido centres on 0, MIDI on 8192


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """(samples, channels) floats -> 16-bit PCM WAV, written atomically. Scales `audio` in place."""
    # Dense chords through a GM SoundFont can sum past full scale. Scaling the whole piece down
    # keeps its dynamics; clipping the peaks would crackle.
    peak = max(float(audio.max()), -float(audio.min())) if audio.size else 0.0  # np.abs would copy it
    audio *= 32767 / max(peak, 1.0)  # in place: the piece may be hundreds of MB
    samples = np.rint(audio, out=audio).astype("<i2")
    with atomic_write(path, "wb") as handle, wave.open(handle, "wb") as wav:
        wav.setnchannels(samples.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.tobytes())  # row-major (samples, channels) is WAV's L R L R ...
