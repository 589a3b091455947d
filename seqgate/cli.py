"""The `seqgate` command line: options, defaults and printing only; the work is in the stages."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqgate import __version__
from seqgate.data.dataset import DEFAULT_DATASET, SPLITS
from seqgate.compare.demo import DEMO_OUTPUT
from seqgate.errors import UserError
from seqgate.model.cells import CELL_HELP, CELLS
from seqgate.data.roll import HIGHEST_PITCH, LOWEST_PITCH
from seqgate.settings import (AUTO_KEY, DEFAULT_PARAMS, MOST_PARAMS_FOR_A_CORPUS, PARAMS_PER_TRAINING_FRAME, EVALUATE_CHECKPOINT, EVALUATE_DEVICE, EVALUATE_SPLIT, RECIPES,
                              CompareConfig, PrepareConfig, SampleConfig, TrainConfig)

RECIPE_HELP = "; ".join(f"{name}: {recipe.summary}" for name, recipe in RECIPES.items())

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Polyphonic music sequence modeling: tanh RNN, GRU and LSTM on piano rolls.",
)
console = Console()


def train_display(max_epochs: int):
    """compare's and demo's display_factory: a TrainDisplay on this CLI's console."""
    from seqgate.training.display import TrainDisplay

    return TrainDisplay(max_epochs, console)


def _version(value: bool) -> None:
    if value:
        console.print(f"seqgate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """seqgate: prepare -> train -> evaluate / sample -> compare."""


@app.command()
def prepare(
    paths: Optional[List[Path]] = typer.Argument(
        None, help="MIDI folders or files, or a benchmark .mat/.pickle. Default: the bundled corpus."),
    output: Path = typer.Option(DEFAULT_DATASET, "-o", "--output", help="Dataset file to write."),
    frames_per_quarter: int = typer.Option(PrepareConfig.frames_per_quarter, "--frames-per-quarter", "-f",
                                           help="Grid steps per quarter note (MIDI input)."),
    drums: bool = typer.Option(PrepareConfig.drums, "--drums", help="Keep drum tracks as pitches."),
    transpose_to_c: bool = typer.Option(PrepareConfig.transpose_to_c, "--transpose-to-c",
                                        help="Transpose each piece to C major / C minor."),
    onsets: bool = typer.Option(PrepareConfig.onsets, "--onsets",
                                help="Also keep which keys are struck at each frame, so a re-struck "
                                     "note stays two notes (MIDI input)."),
    split: str = typer.Option(",".join(f"{f:g}" for f in PrepareConfig.split_fractions), "--split",
                              help="train,valid,test fractions for folders without split names."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Parser processes (default: all cores)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write every skipped file and its reason as JSON."),
) -> None:
    """Turn MIDI folders or benchmark files into one piano-roll dataset file."""
    from seqgate.data.prepare import prepare_dataset

    settings = PrepareConfig(frames_per_quarter=frames_per_quarter, drums=drums, transpose_to_c=transpose_to_c,
                             onsets=onsets, split_fractions=PrepareConfig.parse_split(split), workers=workers)
    summary = prepare_dataset(list(paths or []), output, settings.validate(), report=report, console=console)
    _print_prepare_summary(summary)


def _print_prepare_summary(summary) -> None:
    table = Table(title=f"Prepared {summary.output}")
    table.add_column("split")
    table.add_column("pieces", justify="right")
    table.add_column("frames", justify="right")
    for split in SPLITS:
        table.add_row(split, f"{summary.pieces_per_split.get(split, 0):,}",
                      f"{summary.frames_per_split.get(split, 0):,}")
    console.print(table)
    console.print(f"files found: {summary.files_found:,}   skipped: {len(summary.skipped):,}"
                  + (f"   notes outside {LOWEST_PITCH}..{HIGHEST_PITCH} dropped: "
                     f"{summary.dropped_out_of_range:,}"
                     if summary.dropped_out_of_range else ""))
    reasons: dict[str, list[str]] = {}
    for name, reason in summary.skipped:
        reasons.setdefault(reason, []).append(name)
    for reason, names in sorted(reasons.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(names[:3]) + (f", ... (+{len(names) - 3})" if len(names) > 3 else "")
        console.print(f"  skipped {len(names)} - {reason}: {shown}")


@app.command()
def inspect(
    dataset: Path = typer.Argument(DEFAULT_DATASET, help="Dataset file written by `seqgate prepare`."),
) -> None:
    """Statistics of a dataset file: pieces and frames per split, notes per frame, pitch range."""
    from seqgate.data.dataset import dataset_statistics, load_dataset

    stats = dataset_statistics(load_dataset(dataset))
    table = Table(title=str(dataset))
    table.add_column("split")
    table.add_column("pieces", justify="right")
    table.add_column("frames", justify="right")
    table.add_column("notes/frame", justify="right")
    for split in SPLITS:
        row = stats["splits"][split]
        table.add_row(split, f"{row['pieces']:,}", f"{row['frames']:,}", f"{row['mean_notes_per_frame']:.2f}")
    console.print(table)
    low, high = stats["pitch_range"] or (None, None)
    console.print(f"pitch range used: {low}..{high}   frames per quarter: {stats['frames_per_quarter']}"
                  f"   source: {stats['source']}")
    if stats["struck_notes"] is None:
        console.print("onsets: not kept (a key sounding in consecutive frames reads as one note)")
    else:
        console.print(f"onsets: kept, {stats['struck_notes']:,} notes struck")


@app.command()
def train(
    cell: str = typer.Option(TrainConfig.cell, "--cell", "-c", help=CELL_HELP + "."),
    data: Path = typer.Option(DEFAULT_DATASET, "--data", "-d", help="Dataset file from `seqgate prepare`."),
    params: Optional[int] = typer.Option(None, "--params", help=f"Parameter budget; the hidden size is solved for it (default: {DEFAULT_PARAMS:,} on the benchmark corpora, the paper's size; on another corpus {PARAMS_PER_TRAINING_FRAME:g} a training frame, {DEFAULT_PARAMS:,} to {MOST_PARAMS_FOR_A_CORPUS:,})."),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="Hidden units (instead of --params)."),
    head: str = typer.Option(TrainConfig.head, "--head", help="Output of a frame: nade (RNN-NADE, keys in order) or bernoulli (independent keys, the paper's)."),
    nade_hidden: Optional[int] = typer.Option(None, "--nade-hidden", help="NADE hidden units (default: 3/4 of the recurrent units, sized with them by --params)."),
    layers: int = typer.Option(TrainConfig.layers, "--layers", help="Stacked recurrent layers."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout on the hidden state before the head, and between layers (default: the recipe's)."),
    recipe: str = typer.Option(TrainConfig.recipe, "--recipe", help=RECIPE_HELP + "."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: the recipe's)."),
    weight_noise: Optional[float] = typer.Option(None, "--weight-noise", help="Std of Gaussian weight noise (default: the recipe's)."),
    batch_size: int = typer.Option(TrainConfig.batch_size, "--batch-size", help="Windows per batch."),
    window: int = typer.Option(TrainConfig.window, "--window", help="Longest training window in frames."),
    augment_transpose: int = typer.Option(TrainConfig.augment_transpose, "--augment-transpose", help="Random transposition by up to K semitones."),
    max_epochs: int = typer.Option(TrainConfig.max_epochs, "--max-epochs", envvar="SEQGATE_MAX_EPOCHS", help="Stop after this many epochs."),
    max_minutes: Optional[float] = typer.Option(TrainConfig.max_minutes, "--max-minutes", envvar="SEQGATE_MAX_MINUTES", help="Stop after this many minutes of training (0: no time limit)."),
    patience: int = typer.Option(TrainConfig.patience, "--patience", help="Epochs without a better validation NLL before stopping."),
    seed: int = typer.Option(TrainConfig.seed, "--seed", help="Seed of every random choice."),
    device: str = typer.Option(TrainConfig.device, "--device", help="auto, cpu or cuda."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default runs/<cell>-<n>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir (or the last run) from last.pt."),
) -> None:
    """Train a tanh, GRU or LSTM next-step predictor; the best model by validation NLL is kept."""
    from seqgate.training import train as training
    from seqgate.training.display import TrainDisplay, finished_table, stop_reason
    from seqgate.training.distributed import is_main_process

    config = TrainConfig(
        cell=cell, data=str(data), hidden=hidden, params=params, head=head, nade_hidden=nade_hidden,
        layers=layers, dropout=dropout,
        recipe=recipe, lr=lr, weight_noise=weight_noise, batch_size=batch_size, window=window, augment_transpose=augment_transpose,
        max_epochs=max_epochs, max_minutes=max_minutes, patience=patience, seed=seed, device=device)
    main_process = is_main_process()  # under torchrun, one process shows progress and results
    try:
        summary = training.train(config, run_dir, resume=resume,
                                 display=TrainDisplay(max_epochs, console) if main_process else None)
    except training.Interrupted as stopped:
        _ignore_further_sigterm()
        if main_process:
            Console(stderr=True, soft_wrap=True).print(
                f"interrupted: {stopped}/last.pt holds the last finished epoch; "
                f"continue with `seqgate train --resume --run-dir {stopped}`" if str(stopped)
                else "interrupted before training began; nothing was written")
        raise typer.Exit(130)
    except KeyboardInterrupt:
        # a second Ctrl-C or SIGTERM while train was already stopping: click would call it
        # "Aborted!" and exit 1; last.pt is still whole (every file is written atomically)
        _ignore_further_sigterm()
        if main_process:
            folder = run_dir if run_dir is not None else "RUN"
            Console(stderr=True, soft_wrap=True).print(f"interrupted: {folder}/last.pt holds the last finished epoch; "
                                       f"continue with `seqgate train --resume --run-dir {folder}`")
        raise typer.Exit(130)
    if not main_process:
        return
    from seqgate.training.evaluate import nll_quantity

    console.print(finished_table(summary, nll_quantity(summary["model_config"].get("onsets", False))))
    console.print(stop_reason(summary))


@app.command()
def evaluate(
    runs: Optional[List[Path]] = typer.Argument(None, help="Run folder (default: the run trained last); "
                                                "several: their ensemble, the mean of their predictive "
                                                "distributions, an exact likelihood."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset file (default: the first run's own)."),
    split: str = typer.Option(EVALUATE_SPLIT, "--split", help="train, valid or test."),
    checkpoint: str = typer.Option(EVALUATE_CHECKPOINT, "--checkpoint", help="best.pt or last.pt."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
    device: str = typer.Option(EVALUATE_DEVICE, "--device", help="cpu, cuda or auto."),
) -> None:
    """NLL per frame (and per piece), frame accuracy, precision, recall and F1 of a trained run (or of several runs' ensemble)."""
    import json

    from seqgate.training.evaluate import evaluate_runs
    from seqgate.training.runs import open_run
    from seqgate.training.distributed import pick_device

    result = evaluate_runs([open_run(run) for run in runs or [None]], data, split, checkpoint,
                           pick_device(device))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    what = (f"ensemble of {len(result['runs'])} runs ({result['cell']}, {result['head']} head)" if "runs" in result
            else f"{result['cell']} ({result['head']} head) {result['run']}")
    table = Table(title=f"{what} on {split} ({result['pieces']} pieces, {result['frames']:,} frames)",
                  caption=f"NLL: {result['nll_of']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("NLL per frame (nats, frames weighted equally)", f"{result['nll']:.4f}")
    table.add_row("NLL per frame, mean over pieces", f"{result['nll_per_piece']:.4f}")
    if result["nll_from_second_frame"] is not None:
        table.add_row("NLL per frame from each piece's second (TCN's convention)",
                      f"{result['nll_from_second_frame']:.4f}")
    for key, label in (("accuracy", "frame accuracy (Bay et al. 2009)"), ("precision", "precision"),
                       ("recall", "recall"), ("f1", "F1")):
        table.add_row(label, f"{result[key]:.4f}")
    console.print(table)


@app.command()
def sample(
    output: Path = typer.Option(Path("sample.mid"), "-o", "--output", help="MIDI file to write."),
    n: int = typer.Option(SampleConfig.n, "-n", help="Number of pieces (out-1.mid ... out-N.mid when above 1)."),
    run: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: the run trained last)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="New frames per piece."),
    bars: Optional[int] = typer.Option(None, "--bars", help=f"New 4/4 bars per piece (default {SampleConfig.default_bars})."),
    seed: int = typer.Option(SampleConfig.seed, "--seed", help="Seed of the draws: the same seed writes the same files."),
    temperature: float = typer.Option(SampleConfig.temperature, "--temperature", help="Below 1: safer; above 1: wilder."),
    primer: Optional[Path] = typer.Option(None, "--primer", help="MIDI file whose roll is fed first."),
    primer_frames: Optional[int] = typer.Option(None, "--primer-frames", help="Use only the first N frames of the primer."),
    primer_in_output: bool = typer.Option(SampleConfig.primer_in_output, "--primer-in-output/--no-primer-in-output", help="Start each output with the primer."),
    qpm: Optional[float] = typer.Option(None, "--qpm", help="Tempo (default: the training corpus's median, else 120)."),
    program: int = typer.Option(SampleConfig.program, "--program", help="General MIDI program (0 = piano)."),
    velocity: int = typer.Option(SampleConfig.velocity, "--velocity", help="MIDI velocity of every note (1-127)."),
    max_polyphony: Optional[int] = typer.Option(None, "--max-polyphony", help="At most K keys per frame (nade: the lowest K drawn; bernoulli: the K most probable drawn)."),
    key: Optional[str] = typer.Option(None, "--key", help=f'Hold the pieces to a key ("C", "F# minor", "Bb", "Ebm"; "{AUTO_KEY}": the primer\'s): notes outside it are drawn less often. Default: the model\'s own draws.'),
    key_strength: Optional[float] = typer.Option(None, "--key-strength", help=f"With --key: logit taken off notes outside the key, their odds divided by e^S (default {SampleConfig.default_key_strength:g}; 0: no nudge)."),
    png: bool = typer.Option(False, "--png", help="Also write a piano-roll picture of each output."),
    wav: bool = typer.Option(False, "--wav", help="Also render each output to a WAV file beside it, to listen to."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="With --wav or --html: General MIDI .sf2 file (default as for `seqgate render`)."),
    html: bool = typer.Option(False, "--html", help="Also write a page beside the outputs (OUTPUT with .html) with each piece's piano roll, an audio player and its measures."),
) -> None:
    """Sample new polyphonic music from a trained model and write it as MIDI."""
    # The options are checked before torch loads, so a mistyped one is answered at once.
    settings = SampleConfig(
        n=n, frames=frames, bars=bars, seed=seed, temperature=temperature, primer=primer,
        primer_frames=primer_frames, primer_in_output=primer_in_output, qpm=qpm, program=program,
        velocity=velocity, max_polyphony=max_polyphony, png=png or html, key=key,
        key_strength=key_strength).validate()
    if soundfont is not None and not (wav or html):
        raise UserError("--soundfont is used only with --wav or --html")
    if html and Path(output).suffix.lower() == ".html":
        raise UserError(f"-o {output} names the MIDI file; with --html the page goes beside it, "
                        f"so give -o a .mid name")
    if wav:
        from seqgate.music.audio import check_can_render, render_wav

        if Path(output).suffix.lower() == ".wav":  # the audio would take the MIDI file's own name
            raise UserError(f"-o {output} names the MIDI file; with --wav the audio goes beside it, "
                            f"so give -o a .mid name")
        soundfont = check_can_render(soundfont)  # before sampling, so a missing one wastes no work
    from seqgate.music import sample as sampling

    report = sampling.sample_to_midi(run, output, settings, console=console)
    key_line = sampling.describe_key(report, settings)
    if key_line:
        console.print(key_line)
    console.print(sampling.statistics_table(report.results, report.train_stats))
    rendered = []
    for result in report.results:
        written = [result.path] + ([result.png] if result.png else [])
        has_notes = result.statistics["notes"] > 0
        if wav and has_notes:  # a silent piece is a legitimate sample, but nothing to listen to
            rendered.append(render_wav(result.path, soundfont=soundfont))
            written.append(rendered[-1])
        silent = " (no notes, so no WAV)" if wav and not has_notes else ""
        console.print("wrote " + ", ".join(map(str, written)) + silent, soft_wrap=True)  # long paths: one line
    if rendered:
        console.print(f"WAV files rendered through the SoundFont {soundfont}", soft_wrap=True)
    if html:
        from seqgate.music.page import write_sample_page

        page, no_players = write_sample_page(report, Path(output).with_suffix(".html"), soundfont)
        console.print(f"wrote {page}" + (f" (no audio players: {no_players})" if no_players else ""),
                      soft_wrap=True)


@app.command("compare")
def compare_command(
    cells: List[str] = typer.Argument(..., help=f"Cells to compare: {', '.join(CELLS)}."),
    data: Path = typer.Option(DEFAULT_DATASET, "--data", "-d", help="Dataset file from `seqgate prepare`."),
    head: str = typer.Option(TrainConfig.head, "--head", help="Output head of every cell: nade, bernoulli, or both as bernoulli,nade (one row per cell and head)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output folder (default runs/compare-<cells>, plus -<heads> with several heads)."),
    params: int = typer.Option(CompareConfig.params, "--params", help="Parameter budget for every cell; each hidden size is solved for it."),
    seeds: int = typer.Option(CompareConfig.seeds, "--seeds", help="Runs per cell, seeds 0..K-1; the table shows mean ± std."),
    max_epochs: int = typer.Option(CompareConfig.max_epochs, "--max-epochs", envvar="SEQGATE_MAX_EPOCHS", help="Per run."),
    max_minutes: Optional[float] = typer.Option(CompareConfig.max_minutes, "--max-minutes", envvar="SEQGATE_MAX_MINUTES", help="Per run (0: no time limit)."),
    jobs: int = typer.Option(CompareConfig.jobs, "--jobs", "-j", help="Runs trained at once, each in its own process."),
    recipe: str = typer.Option(CompareConfig.recipe, "--recipe", help=RECIPE_HELP + "."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Windows per batch of every run (default: train's, {TrainConfig.batch_size})."),
    device: str = typer.Option(CompareConfig.device, "--device", help="auto, cpu or cuda."),
    paper: bool = typer.Option(CompareConfig.paper, "--paper", help="Show Chung et al. 2014's Table 2 numbers beside these (benchmark corpora only)."),
) -> None:
    """Train several cells under the same conditions: one table (the paper's Table 2), one set of curves."""
    from seqgate.compare.compare import compare
    from seqgate.compare.report import results_table
    from seqgate.training.train import Interrupted

    try:
        settings = CompareConfig(
            cells=tuple(cells), heads=tuple(h.strip() for h in head.split(",") if h.strip()), data=str(data),
            output=output, params=params, seeds=seeds, max_epochs=max_epochs, max_minutes=max_minutes,
            jobs=jobs, recipe=recipe, device=device, paper=paper,
            train_options={} if batch_size is None else {"batch_size": batch_size})
        result = compare(settings, console=console, display_factory=train_display)
    except Interrupted as stopped:
        Console(stderr=True, soft_wrap=True).print(f"interrupted ({stopped}); run the same command again to continue: "
                                   "finished runs are reused, unfinished ones resume from last.pt")
        raise typer.Exit(130)
    console.print(results_table(result))
    console.print(f"wrote {result.files['report']}, {result.files['results'].name}, "
                  f"{result.files['curves'].name} and {result.files['page'].name}"
                  + (f" (no audio players: {result.no_players})" if result.no_players else ""), soft_wrap=True)


@app.command("demo")
def demo_command(
    output: Path = typer.Option(DEMO_OUTPUT, "-o", "--output", help="Folder for everything the demo writes."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", envvar="SEQGATE_MAX_EPOCHS", help="Per run (default: the demo's)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", envvar="SEQGATE_MAX_MINUTES", help="Per run (default: the demo's)."),
) -> None:
    """The whole pipeline on the bundled corpus in a few minutes: prepare, compare gru and lstm, sample."""
    from seqgate.compare import demo
    from seqgate.compare.report import results_table
    from seqgate.music.sample import statistics_table

    result = demo.run_demo(output, max_epochs=max_epochs, max_minutes=max_minutes, console=console,
                           display_factory=train_display)
    console.print(results_table(result.comparison))
    console.print(statistics_table(result.sample.results, result.sample.train_stats))
    console.print(f"[bold]Files[/] (all under {result.output}):")
    for what, path in result.files:
        console.print(f"  {what:<22} {path}")
    page = result.comparison.files["page"]
    console.print(f"[bold]Open {page} in a browser[/] to look at and listen to the samples"
                  + (f" (no audio players: {result.comparison.no_players})" if result.comparison.no_players else ""),
                  soft_wrap=True)


@app.command()
def render(
    midi: Path = typer.Argument(..., help="MIDI file to listen to, e.g. one written by `seqgate sample`."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Audio file to write: .wav (default: the MIDI path with .wav), .mp3 or .flac."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="General MIDI .sf2 file (default: $SEQGATE_SOUNDFONT, else a system one, else pretty_midi's TimGM6mb)."),
) -> None:
    """Render a MIDI file to stereo audio through a General MIDI SoundFont, to listen to it."""
    from seqgate.music.audio import find_soundfont, render_wav

    soundfont_path = find_soundfont(soundfont)  # found here too, to say which one was used
    wav = render_wav(midi, output, soundfont_path)
    console.print(f"wrote {wav} (SoundFont {soundfont_path})", soft_wrap=True)  # long paths stay one line


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except UserError as error:
        _ignore_further_sigterm()
        # escaped: a message quoting a file name or a library's error may hold [brackets]
        Console(stderr=True, soft_wrap=True).print(f"[bold red]seqgate: error:[/] {escape(str(error))}",
                                                   highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        _ignore_further_sigterm()
        Console(stderr=True, soft_wrap=True).print("seqgate: interrupted")
        sys.exit(130)


def _ignore_further_sigterm() -> None:
    """On the way out with a message: a SIGTERM now (torchrun stopping its other processes) must
    not cut the one line short or turn it into a traceback."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    main()
