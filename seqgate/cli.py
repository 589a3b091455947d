"""The `seqgate` command line: options, defaults and printing only; the work is in the stages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from seqgate import __version__
from seqgate.errors import UserError
from seqgate.files import DEFAULT_DATASET

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Polyphonic music sequence modeling: tanh RNN, GRU and LSTM on piano rolls.",
)
console = Console()


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
    frames_per_quarter: int = typer.Option(2, "--frames-per-quarter", "-f",
                                           help="Grid steps per quarter note (MIDI input)."),
    drums: bool = typer.Option(False, "--drums", help="Keep drum tracks as pitches."),
    transpose_to_c: bool = typer.Option(False, "--transpose-to-c",
                                        help="Transpose each piece to C major / C minor."),
    split: str = typer.Option("0.8,0.1,0.1", "--split",
                              help="train,valid,test fractions for folders without split names."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Parser processes (default: all cores)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write every skipped file and its reason as JSON."),
) -> None:
    """Turn MIDI folders or benchmark files into one piano-roll dataset file."""
    from seqgate import corpus

    summary = corpus.prepare_dataset(
        list(paths or []), output,
        frames_per_quarter=frames_per_quarter, drums=drums, transpose_to_c=transpose_to_c,
        split_fractions=corpus.parse_split_spec(split), workers=workers, report=report,
        console=console,
    )
    _print_prepare_summary(summary)


def _print_prepare_summary(summary) -> None:
    table = Table(title=f"Prepared {summary.output}")
    table.add_column("split")
    table.add_column("pieces", justify="right")
    table.add_column("frames", justify="right")
    for split in ("train", "valid", "test"):
        table.add_row(split, f"{summary.pieces_per_split.get(split, 0):,}",
                      f"{summary.frames_per_split.get(split, 0):,}")
    console.print(table)
    console.print(f"files found: {summary.files_found:,}   skipped: {len(summary.skipped):,}"
                  + (f"   notes outside 21..108 dropped: {summary.dropped_out_of_range:,}"
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
    from seqgate import corpus

    stats = corpus.dataset_statistics(corpus.load_dataset(dataset))
    table = Table(title=str(dataset))
    table.add_column("split")
    table.add_column("pieces", justify="right")
    table.add_column("frames", justify="right")
    table.add_column("notes/frame", justify="right")
    for split in ("train", "valid", "test"):
        row = stats["splits"][split]
        table.add_row(split, f"{row['pieces']:,}", f"{row['frames']:,}", f"{row['mean_notes_per_frame']:.2f}")
    console.print(table)
    low, high = stats["pitch_range"] or (None, None)
    console.print(f"pitch range used: {low}..{high}   frames per quarter: {stats['frames_per_quarter']}"
                  f"   source: {stats['source']}")


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except UserError as error:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]seqgate: error:[/] {error}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("seqgate: interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
