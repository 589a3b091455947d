"""`seqgate sample`: new polyphonic music from a trained next-step model, written as MIDI.

Generation is ancestral sampling from the model's factorisation p(frame_t | frames_<t), each frame
drawn by the model's output head given the recurrent state (for the Bernoulli head, 88 independent
keys: Boulanger-Lewandowski et al. 2012's RNN baseline; Chung et al. 2014 sample their music
models the same way). The recurrent state is carried
from frame to frame, so each new frame costs one cell step whatever the length so far: the prefix
is never run again (the loop of pytorch/examples word_language_model/generate.py, and of
karpathy/nanoGPT's sample.py with its temperature, minus nanoGPT's re-reading of the context).

Speed: with a ~20k-parameter model one step is a few microseconds of arithmetic, so time goes to
per-op overhead. The model's step() calls torch's cell functions on the fused layer's weights, the
head's drawer folds the temperature into its weights once and draws the random numbers for many
frames in one call, the loop writes into a preallocated tensor, and it all runs on one thread
(see model.few_threads_for_small_work).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from seqgate.errors import UserError
from seqgate.music.metrics import MEASURES_CAPTION, SAMPLE_MEASURES, format_measure, roll_statistics
from seqgate.model.network import NextStepModel, few_threads_for_small_work
from seqgate.data.keys import estimate_key, key_name, key_pitch_classes, parse_key
from seqgate.data.roll import DEFAULT_QPM, LOWEST_PITCH, N_KEYS, dense_roll, roll_to_midi
from seqgate.training.runs import Checkpoint, DataRecord, open_run
from seqgate.settings import SampleConfig
PROGRESS_EVERY_FRAMES = 256


# --------------------------------------------------------------------------------------------
# Generation


def generate(model: NextStepModel, n_pieces: int, frames: int, *, temperature: float = SampleConfig.temperature,
             seed: int = 0, primer: np.ndarray | None = None,
             max_polyphony: int | None = None, logit_bias: torch.Tensor | None = None,
             on_progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Sample `n_pieces` continuations of `frames` new frames each, as a bool (n, frames, width)
    array: width 88, or for an onset-aware model 2 x 88, the sounding keys and then the struck ones.

    primer: an optional bool (primer_frames, width) roll that every piece continues from; it is fed
    through the model first and is not part of the result. temperature divides the logits (below
    1: safer, above 1: wilder). max_polyphony: at most this many keys per new frame (Bernoulli head:
    the most probable of the keys drawn; NADE head: the first keys drawn from low to high, every key
    above them left off). logit_bias: None, or a (width,) tensor added to every unit's logit
    before the temperature divides it (key_logit_bias: a key). Same seed,
    same arguments, same machine -> the same pieces. on_progress(frames_done) is called now and
    then. The model is put in eval mode for the call and given back in the mode it came in.
    Temperature and max_polyphony are taken as given: SampleConfig.validate checks a user's.
    """
    rolls, _ = _generate(model, n_pieces, frames, temperature=temperature, seed=seed,
                         primer=primer, max_polyphony=max_polyphony, logit_bias=logit_bias,
                         on_progress=on_progress, keep_probabilities=False)
    return rolls


def generate_with_probabilities(model: NextStepModel, n_pieces: int, frames: int, *,
                                temperature: float = SampleConfig.temperature, seed: int = 0,
                                primer: np.ndarray | None = None,
                                max_polyphony: int | None = None,
                                logit_bias: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """As `generate`, plus the float32 (n, frames, width) probabilities every frame was drawn
    from (sigmoid((logits + logit_bias) / temperature), before any max_polyphony cut; with onsets,
    the 88 keys' and then their re-strikes'), for checks and analysis."""
    return _generate(model, n_pieces, frames, temperature=temperature, seed=seed, primer=primer,
                     max_polyphony=max_polyphony, logit_bias=logit_bias, on_progress=None,
                     keep_probabilities=True)


def _generate(model, n_pieces, frames, *, temperature, seed, primer, max_polyphony, logit_bias,
              on_progress, keep_probabilities):
    n_pieces, frames = int(n_pieces), int(frames)
    if n_pieces <= 0:
        raise UserError("the number of pieces must be at least 1")
    if frames <= 0:
        raise UserError("the number of frames to generate must be at least 1")
    width = model.width
    if primer is not None:
        primer = np.asarray(primer)
        if primer.ndim != 2 or primer.shape[1] != width or primer.shape[0] == 0:
            raise UserError(f"the primer must be a non-empty (frames, {width}) roll, "
                            f"got shape {primer.shape}")

    generator = torch.Generator().manual_seed(int(seed))
    # Frames live time-major, so that frame t of every piece is one contiguous block: it is
    # written in place by the draw and read in place as the next step's input.
    rolls = torch.empty(frames, n_pieces, width)
    probabilities = torch.empty(frames, n_pieces, width) if keep_probabilities else None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), few_threads_for_small_work(model, n_pieces):
            draw = model.drawer(temperature, generator, n_pieces, logit_bias)
            # The whole primer in one call (the fused layer runs it as one sequence); its last
            # output already predicts the first new frame. Without a primer this is just the
            # model's all-zero start frame.
            prefix = torch.zeros(n_pieces, 1 + (0 if primer is None else len(primer)), width)
            if primer is not None:
                prefix[:, 1:] = torch.from_numpy(primer.astype(np.float32))
            features, state = model.begin(prefix)
            for t in range(frames):
                if on_progress is not None and t % PROGRESS_EVERY_FRAMES == 0:
                    on_progress(t)
                # The frame before (an onset-aware head needs it: a key that did not sound in
                # it is struck if it sounds now).
                probs = draw(features, rolls[t], max_polyphony, rolls[t - 1] if t else prefix[:, -1])
                if keep_probabilities:
                    probabilities[t] = probs
                if t + 1 < frames:
                    features, state = model.step(rolls[t], state)
            if on_progress is not None:
                on_progress(frames)
    finally:
        model.train(was_training)
    rolls = rolls.transpose(0, 1).numpy().astype(bool)
    if keep_probabilities:
        return rolls, probabilities.transpose(0, 1).contiguous().numpy()
    return rolls, None


# --------------------------------------------------------------------------------------------
# From a run folder to MIDI files


@dataclass
class SampleResult:
    """One written piece."""
    path: Path  # the MIDI file
    frames: int  # frames in the file, primer included when it was written out
    statistics: dict  # metrics.roll_statistics of the piece's roll
    png: Path | None = None  # the piano-roll image, when asked for


@dataclass
class SampleReport:
    """What `sample_to_midi` wrote, and what to compare it with."""
    results: list[SampleResult]
    train_stats: dict | None  # roll_statistics of the run's training split, if it stored them
    run_dir: Path
    qpm: float
    frames_per_quarter: int
    primer_frames: int  # primer frames fed to the model (0 without a primer)
    key: tuple[int, bool] | None = None  # (tonic pitch class, minor?) the draws were held to, if any


def sample_to_midi(run_dir: str | os.PathLike | None, output: str | os.PathLike,
                   settings: SampleConfig = SampleConfig(), console: Console | None = None) -> SampleReport:
    """Generate settings.n pieces from the best checkpoint of a run and write them as MIDI files.

    run_dir: a run folder (or its best.pt); None means the run trained last. output: the MIDI
    path; with n > 1 the pieces go to <stem>-1<suffix> ... <stem>-<n><suffix> beside it, and
    png writes a piano-roll image <stem>.png beside each.
    Length (SampleConfig.frames_for): `frames` new frames, or `bars` bars of 4 quarter notes on the
    run's grid (a roll off the beat grid, such as the benchmark .mat corpora, counts a frame a
    quarter); the primer is not counted. primer: a MIDI file read at the run's grid, cut to its
    first `primer_frames` frames if given; every piece continues it and, with primer_in_output,
    starts with it. qpm: default the training corpus's median source tempo, else 120.
    """
    settings = settings.validate()
    run = open_run(run_dir)
    model, checkpoint = run.load_model("best.pt")
    return write_samples(model, checkpoint, run.folder, output, settings, console)


def write_samples(model: NextStepModel, checkpoint: Checkpoint, run_folder: Path, output: str | os.PathLike,
                  settings: SampleConfig, console: Console | None = None) -> SampleReport:
    """sample_to_midi for a model already loaded from `run_folder`'s best.pt (compare has it);
    settings already validated."""
    paths = output_paths(output, settings.n)
    _check_writable_folder(paths[0].parent)
    data = checkpoint.data
    frames = settings.frames_for(data.frames_per_beat)
    qpm = float(settings.qpm if settings.qpm is not None else data.median_qpm or DEFAULT_QPM)

    primer_roll = None
    if settings.primer is not None:
        primer_roll = _read_primer(settings.primer, model, data, settings.primer_frames, console)
    key = _requested_key(settings, primer_roll, model, data)
    bias = None if key is None else key_logit_bias(model, key, settings.strength_of_key, data.lowest_pitch)

    generated = _generate_with_progress(model, settings.n, frames, temperature=settings.temperature,
                                        seed=settings.seed, primer=primer_roll,
                                        max_polyphony=settings.max_polyphony, logit_bias=bias,
                                        console=console)

    results = []
    for path, frames_drawn in zip(paths, generated):
        if primer_roll is not None and settings.primer_in_output:
            frames_drawn = np.concatenate([primer_roll, frames_drawn], axis=0)
        roll, struck = sounding_and_struck(model, frames_drawn)
        roll_to_midi(roll, path, qpm=qpm, frames_per_quarter=data.frames_per_beat,
                     program=settings.program, velocity=settings.velocity, struck=struck, key=key)
        image = None
        if settings.png:
            from seqgate.music.plots import plot_piano_roll  # matplotlib loads only when asked

            image = path.with_suffix(".png")
            plot_piano_roll(roll, image, title=path.name, frames_per_quarter=data.frames_per_quarter)
        results.append(SampleResult(path=path, frames=len(roll),
                                    statistics=roll_statistics([roll], None if struck is None else [struck],
                                                               data.frames_per_quarter),
                                    png=image))
    return SampleReport(results=results, train_stats=data.train_stats, run_dir=run_folder,
                        qpm=qpm, frames_per_quarter=data.frames_per_beat,
                        primer_frames=0 if primer_roll is None else len(primer_roll), key=key)


def sample_statistics(model: NextStepModel, checkpoint: Checkpoint, n: int, seed: int = 0,
                      settings: SampleConfig = SampleConfig()) -> dict:
    """metrics.roll_statistics of `n` pieces sampled from a loaded run (what `compare` reports per
    cell), of settings' length and temperature, without writing any file."""
    data = checkpoint.data
    drawn = generate(model, n, settings.frames_for(data.frames_per_beat), temperature=settings.temperature,
                     seed=seed)
    pieces = [sounding_and_struck(model, piece) for piece in drawn]
    struck = [s for _, s in pieces] if model.onsets else None
    return roll_statistics([roll for roll, _ in pieces], struck, data.frames_per_quarter)


def key_logit_bias(model: NextStepModel, key: tuple[int, bool], strength: float,
                   lowest_pitch: int = LOWEST_PITCH) -> torch.Tensor:
    """The (width,) logit bias that holds samples to `key`, (tonic pitch class, minor?): every
    key of the keyboard whose pitch class is not among the key's notes (keys.key_pitch_classes)
    has `strength` taken off its logit, its odds of sounding divided by e^strength at every draw;
    an onset-aware model's re-strike units are left as they are.

    Why: the model knows a key only from what it has drawn, so over a piece longer than the pieces
    it was trained on, a few chromatic draws can carry it into another key. A nudge, not a wall:
    a chromatic note the model is sure of (a leading tone, a passing note) still sounds.
    """
    in_key = key_pitch_classes(*key)
    outside = torch.tensor([(lowest_pitch + k) % 12 not in in_key for k in range(model.n_keys)])
    bias = torch.zeros(model.width)
    bias[:model.n_keys] = -float(strength) * outside
    return bias


def _requested_key(settings: SampleConfig, primer_roll: np.ndarray | None, model: NextStepModel,
                   data: DataRecord) -> tuple[int, bool] | None:
    """--key as (tonic, minor?): the named key, the primer's (estimated from how long each
    pitch sounds in it), or None."""
    if settings.key is None:
        return None
    if not settings.key_from_primer:
        return parse_key(settings.key)
    durations = primer_roll[:, :model.n_keys].sum(0)
    if not durations.any():
        raise UserError(f"--key {settings.key}: the primer has no notes to take a key from; name the key")
    return estimate_key(data.lowest_pitch + np.arange(model.n_keys), durations)


def describe_key(report: "SampleReport", settings: SampleConfig) -> str | None:
    """The console's line on --key, or None without one."""
    if report.key is None:
        return None
    source = " (estimated from the primer)" if settings.key_from_primer else ""
    strength = settings.strength_of_key
    return (f"key {key_name(*report.key)}{source}: notes outside it drawn with their odds divided by "
            f"{math.exp(strength):.1f} (--key-strength {strength:g})")


def sounding_and_struck(model: NextStepModel, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A piece's drawn (frames, width) frames -> (its roll, the keys struck at each frame or None):
    an onset-aware model's frames hold the struck keys after the sounding ones, and a key struck
    while it sounds starts a new note."""
    return frames[:, :N_KEYS], frames[:, N_KEYS:] if model.onsets else None


def output_paths(output: str | os.PathLike, n: int) -> list[Path]:
    """`output` itself for one piece; <stem>-1<suffix> ... <stem>-<n><suffix> for several."""
    output = Path(output)
    if n == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(1, n + 1)]


def _check_writable_folder(folder: Path) -> None:
    """Fail before generating, not after, when the files could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {folder}: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"output folder {folder} is not writable")


def _read_primer(primer, model: NextStepModel, data: DataRecord, primer_frames: int | None,
                 console: Console | None) -> np.ndarray:
    n_keys = data.roll_format.get("n_keys", model.n_keys)
    lowest = data.lowest_pitch
    if n_keys != N_KEYS or lowest != LOWEST_PITCH or model.n_keys != N_KEYS:
        raise UserError(f"this run's rolls have {n_keys} keys from MIDI {lowest}; a MIDI primer "
                        f"gives {N_KEYS} keys from MIDI {LOWEST_PITCH}, so it cannot prime it")
    path = Path(primer)
    if not path.is_file():
        raise UserError(f"primer {path}: no such file")
    from seqgate.data.prepare import read_midi_isolated

    # A stranger's file: a crash costs a line.
    parsed = read_midi_isolated(path, data.frames_per_beat, onsets=model.onsets)
    if isinstance(parsed, str):
        raise UserError(f"primer {path}: {parsed}")
    roll = dense_roll(parsed.pitches, parsed.frame_counts)
    if model.onsets:  # the struck keys after the sounding ones, as the model's frames hold them
        roll = np.concatenate([roll, dense_roll(parsed.pitches, parsed.frame_counts, parsed.onsets)], axis=1)
    if primer_frames is not None:
        roll = roll[:int(primer_frames)]
    if console is not None and parsed.dropped_out_of_range:
        console.print(f"primer: {parsed.dropped_out_of_range} notes outside MIDI "
                      f"{LOWEST_PITCH}..{LOWEST_PITCH + N_KEYS - 1} left out")
    return roll


def _generate_with_progress(model, n, frames, *, console, **options) -> np.ndarray:
    if console is None:
        return generate(model, n, frames, **options)
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"sampling {n} x {frames:,} frames", total=frames)
        return generate(model, n, frames,
                        on_progress=lambda done: progress.update(task, completed=done), **options)


# --------------------------------------------------------------------------------------------
# The summary


# The summary shows each sample's own column up to this many; beyond, only their mean.
SAMPLES_SHOWN = 4


def statistics_table(results: list[SampleResult], train_stats: dict | None = None) -> Table:
    """The SAMPLE_MEASURES (MusPy's, see metrics.py) of each written piece (up to SAMPLES_SHOWN),
    their mean over all pieces, and the training corpus's, one measure a row: the columns stay
    few, so the table fits a narrow terminal whatever the number of measures."""
    folder = results[0].path.parent if results else Path(".")
    table = Table(title=f"Samples in {folder} beside the training corpus",
                  caption=MEASURES_CAPTION)
    columns = [(result.path.name, result.statistics) for result in results[:SAMPLES_SHOWN]]
    if len(results) > 1:
        columns.append((f"mean of {len(results)}", mean_statistics([r.statistics for r in results])))
    if train_stats is not None:
        columns.append(("training corpus", train_stats))
    table.add_column("measure")
    for name, _ in columns:
        table.add_column(name, justify="right")
    table.add_row("frames", *(f"{stats['frames']:,.0f}" for _, stats in columns))
    table.add_row("notes", *(f"{stats['notes']:,.0f}" for _, stats in columns))
    for key, (heading, _) in SAMPLE_MEASURES.items():
        table.add_row(heading, *(format_measure(stats, key) for _, stats in columns))
    return table


def mean_statistics(statistics: list[dict]) -> dict:
    """Frames and notes summed, each measure averaged over the pieces that have it."""
    mean = {"frames": sum(s["frames"] for s in statistics), "notes": sum(s["notes"] for s in statistics)}
    for key in SAMPLE_MEASURES:
        values = [s[key] for s in statistics if s.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
    return mean
