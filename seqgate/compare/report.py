"""compare's output: the terminal tables, report.md and results.json, and the command that repeats it.

The NLL table is shaped like Chung et al. 2014's Table 2 (train / valid / test NLL per frame, from
each run's best.pt); on a benchmark corpus report.md also lists the published test NLLs of other
models (benchmarks.py), each with its source and convention.
"""

from __future__ import annotations

import html
import shlex
from dataclasses import asdict

from rich import box
from rich.console import Group
from rich.table import Table

from seqgate.data.benchmarks import PAPER_CITATION
from seqgate.data.dataset import SPLITS
from seqgate.music.metrics import SAMPLE_MEASURES, format_measure_stat, measure_legend
from seqgate.files import write_json_atomic, write_text_atomic
from seqgate.training.runs import Run

# Columns averaged over seeds: results.json key -> (report heading, terminal heading, decimals)
MEASURES = {
    "train_nll": ("train NLL", "train", 3), "valid_nll": ("valid NLL", "valid", 3),
    "test_nll": ("test NLL", "test", 3), "test_accuracy": ("test frame acc.", "acc.", 3),
    "best_epoch": ("best epoch", "best ep.", 0), "updates": ("updates", "updates", 0),
    "seconds": ("seconds", "sec", 1), "seconds_per_epoch": ("s / epoch", "s/ep", 2),
    # MusPy's measures of samples from each run (compare.SAMPLE_PIECES pieces of 16 bars)
    **{f"sample_{key}": (heading, heading, 3) for key, (heading, _) in SAMPLE_MEASURES.items()},
}


def format_stat(stat: dict, decimals: int, separator: str = " ") -> str:
    """"8.123 ± 0.045" (std over seeds, only with two or more), or "-"."""
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean']:,.{decimals}f}"
    if stat["std"] is not None:
        text += f"{separator}± {stat['std']:,.{decimals}f}"
    return text


NLL_COLUMNS = ("train_nll", "valid_nll", "test_nll", "test_accuracy")
TRAINING_COLUMNS = ("best_epoch", "updates", "seconds", "seconds_per_epoch")


def _table_rows(comparison, keys=NLL_COLUMNS + TRAINING_COLUMNS, short: bool = False,
                sizes: bool = True) -> tuple[list[str], list[list[str]]]:
    """Headings and rows of the chosen MEASURES (the paper's columns after the NLLs)."""
    headings = ["cell"] + (["params" if short else "parameters", "hidden"] if sizes else [])
    headings += [MEASURES[key][1 if short else 0] for key in keys]
    paper = comparison.paper and "test_nll" in keys
    if paper:
        headings += ["paper train", "paper test"]
    rows = []
    for row in comparison.rows:
        cells = [row["label"]] + ([f"{row['parameters']:,}", str(row["hidden"])] if sizes else [])
        # In the terminal the std goes under the mean, so the table stays narrow.
        cells += [format_stat(row[key], MEASURES[key][2], "\n" if short else " ") for key in keys]
        if paper:
            cells += [f"{row['paper'][split]:.2f}" if row["paper"] else "-" for split in ("train", "test")]
        rows.append(cells)
    return headings, rows


def _rich_table(headings: list[str], rows: list[list[str]], **options) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, **options)
    for index, heading in enumerate(headings):
        # Wide enough for every number and every word of the heading: a narrow terminal wraps
        # headings between words and never cuts a number.
        width = max([len(line) for cells in rows for line in cells[index].splitlines()]
                    + [len(word) for word in heading.split()])
        table.add_column(heading, justify="left" if index == 0 else "right", min_width=width)
    for cells in rows:
        table.add_row(*cells)
    return table


def results_table(comparison) -> Group:
    """The comparison for the terminal: the NLL table (the paper's Table 2) and the training table."""
    seeds = "1 seed" if comparison.seeds == 1 else f"mean ± std over {comparison.seeds} seeds"
    onsets = " of sounding keys and onsets" if comparison.runs[0].evaluation["test"].get("onsets") else ""
    nll = _rich_table(*_table_rows(comparison, NLL_COLUMNS, short=True),
                      title=f"NLL per frame{onsets}, {corpus_name(comparison)} ({seeds})",
                      caption="best.pt, every frame weighted equally; acc.: test frame accuracy"
                              + (f"; paper: {PAPER_CITATION}" if comparison.paper else ""))
    training = _rich_table(*_table_rows(comparison, TRAINING_COLUMNS, short=True, sizes=False),
                           title="Training", caption="sec: seconds of training")
    samples = _rich_table(*_samples_rows(comparison), title="Samples beside the training corpus",
                          caption=SAMPLES_CAPTION)
    published = []
    if comparison.paper and comparison.benchmark.published:
        published = [_rich_table(["model", "test NLL"], [list(item) for item in comparison.benchmark.published.items()],
                                 title=f"Published on {comparison.benchmark.name}", caption=PUBLISHED_CAPTION)]
    return Group(nll, *published, training, samples)


PUBLISHED_CAPTION = "nats per frame; for latent-variable models a bound or an estimate, see each source"


SAMPLES_CAPTION = ("MusPy's measures (metrics.py) of the pieces each run samples (seed = the run's seed), "
                   "mean over seeds")


def _samples_rows(comparison) -> tuple[list[str], list[list[str]]]:
    """One row per sample measure: each cell's mean over seeds, then the training corpus's (one
    measure a row, so the table stays narrow however many measures there are)."""
    corpus = comparison.runs[0].summary.get("data", {}).get("train_stats") or {}
    headings = ["measure"] + [row["label"] for row in comparison.rows] + ["training corpus"]
    rows = [[heading] + [format_measure_stat(row[f"sample_{key}"], key) for row in comparison.rows]
            + [format_measure_stat({"mean": corpus.get(key), "std": None}, key)]
            for key, (heading, _) in SAMPLE_MEASURES.items()]
    return headings, rows


# train_options that `seqgate compare` has a flag for.
TRAIN_OPTION_FLAGS = {"batch_size": "--batch-size"}


def equivalent_command(settings) -> str:
    """The command line that repeats a comparison (a settings.CompareConfig), every compare option
    written out; train_options without a flag are listed after it."""
    words = ["seqgate", "compare", *settings.cells, "--head", ",".join(settings.heads),
             "--data", str(settings.data), "-o", str(settings.output), "--params", str(settings.params),
             "--seeds", str(settings.seeds), "--max-epochs", str(settings.max_epochs)]
    words += ["--max-minutes", f"{settings.max_minutes or 0:g}"]  # 0: none, not the default budget
    words += ["--recipe", settings.recipe]
    if settings.device != "auto":
        words += ["--device", settings.device]
    if settings.jobs > 1:
        words += ["--jobs", str(settings.jobs)]
    if settings.paper:
        words.append("--paper")
    for name, flag in TRAIN_OPTION_FLAGS.items():
        if name in settings.train_options:
            words += [flag, str(settings.train_options[name])]
    command = shlex.join(words)
    unflagged = {k: v for k, v in settings.train_options.items() if k not in TRAIN_OPTION_FLAGS}
    if unflagged:
        command += "  (library call; also " + ", ".join(f"{k}={v!r}" for k, v in sorted(unflagged.items())) + ")"
    return command


def write_outputs(comparison, fingerprint: str, config) -> None:
    """curves.png, results.json and report.md of a compare.Comparison."""
    from seqgate.music.plots import plot_comparison_curves

    curves = {row["label"]: [Run(run.run_dir).read_metrics() for run in comparison.runs
                             if run.label == row["label"]] for row in comparison.rows}
    budget = f"{comparison.rows[0]['parameters']:,}" if len(comparison.rows) == 1 else f"~{config.params:,}"
    plot_comparison_curves(curves, comparison.files["curves"],
                           title=f"{corpus_name(comparison)}: validation NLL, "
                                 f"{budget} parameters")
    first = comparison.runs[0]
    data_info = first.summary.get("data", {})
    results = {
        "command": comparison.command,
        "data": {"path": data_info.get("path", str(comparison.data)), "source": data_info.get("source"),
                 "benchmark": comparison.benchmark.name if comparison.benchmark else None,
                 "fingerprint": fingerprint,
                 "pieces": data_info.get("split_pieces"),
                 "frames": {split: first.evaluation[split]["frames"] for split in SPLITS}},
        "settings": {"seeds": comparison.seeds, **{k: v for k, v in asdict(config).items()
                                                   if k not in ("cell", "head", "seed", "data", "hidden")}},
        "heads": comparison.heads,
        "nll": f"{first.evaluation['test']['nll_of']}, every frame of a split weighted equally; best.pt",
        "std": "sample standard deviation over seeds (n - 1), only with two or more seeds",
        "paper": f"{PAPER_CITATION} (train, test)" if comparison.paper else None,
        "sample_measures": measure_legend(),
        "cells": comparison.rows,
        "runs": [run.record() for run in comparison.runs],
    }
    write_json_atomic(comparison.files["results"], results)
    write_text_atomic(comparison.files["report"], _report(comparison, results))


def corpus_name(comparison) -> str:
    return comparison.benchmark.name if comparison.benchmark else comparison.data.name


def _report(comparison, results: dict) -> str:
    headings, rows = _table_rows(comparison)
    data = results["data"]
    pieces = data["pieces"] or {}
    lines = [
        f"# seqgate compare: {', '.join(row['label'] for row in comparison.rows)}",
        "",
        f"Dataset: `{data['path']}`" + (f" ({data['source']})" if data["source"] else "")
        + (f", the {comparison.benchmark.name} benchmark" if comparison.benchmark else "") + ".  ",
        "Pieces train / valid / test: " + " / ".join(str(pieces.get(s, "?")) for s in SPLITS)
        + "; frames: " + " / ".join(f"{data['frames'][s]:,}" for s in SPLITS) + ".",
        "",
        "Command:",
        "",
        "```",
        comparison.command,
        "```",
        "",
        "Every cell: the same data, parameter budget, recipe, limits and "
        + (f"seeds (0..{comparison.seeds - 1})" if comparison.seeds > 1 else "seed (0)") + f". NLL: {results['nll']} (lowest validation NLL)."
        + (" ±: standard deviation over seeds." if comparison.seeds > 1 else "")
        + (f" Paper: {PAPER_CITATION} (train / test), whose models predict the keys of a frame "
           "independently (the bernoulli head)." if comparison.paper else ""),
        "",
        "Output head: " + "; ".join(f"{row['label']}: {_head_words(row)}" for row in comparison.rows) + ".",
        "",
        "Training settings: " + ", ".join(f"{k} {v}" for k, v in results["settings"].items()
                                          if k not in ("seeds",)) + ".",
        "",
        *(f"Note: {note}\n" for note in comparison.notes),
        *_markdown_table(headings, rows),
        "",
        f"Samples: {SAMPLES_CAPTION}.",
        "",
        *_markdown_table(*_samples_rows(comparison)),
        "",
        "Runs:",
        "",
        *(f"- `{run.run_dir.name}`: {run.action}, {run.summary.get('epochs')} epochs, "
          f"stopped by {run.summary.get('stopped') or '?'}" for run in comparison.runs),
        "",
        *_published_lines(comparison),
        "![validation NLL against updates and seconds](curves.png)",
        "",
    ]
    return "\n".join(lines)


def _markdown_table(headings: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headings) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headings) - 1)) + "|",
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def _head_words(row: dict) -> str:
    if row["head"] == "nade":
        return f"NADE with {row['head_size']} hidden units (RNN-NADE)"
    return "independent Bernoulli keys"


def _published_lines(comparison) -> list[str]:
    """The other published test NLLs on this benchmark, for scale."""
    if comparison.benchmark is None or not comparison.benchmark.published:
        return []
    return [f"Published test NLLs on this corpus ({PUBLISHED_CAPTION}):", "",
            *(f"- {model}: {value}" for model, value in comparison.benchmark.published.items()), ""]


def write_page(comparison) -> str | None:
    """report.html of a compare.Comparison: its tables, curves.png, and each cell's samples with
    pictures and players (rendered here). Returns why it has no players, if it has none."""
    from seqgate.music import page

    folder = comparison.output
    shown = [run for run in comparison.runs if run.page_samples is not None]
    audio, reason = page.render_players([r.path for run in shown for r in run.page_samples.results])
    data = comparison.runs[0].summary.get("data", {})
    sections = [
        f"<p>Dataset <code>{html.escape(str(data.get('path', comparison.data)))}</code>"
        + (f", the {html.escape(comparison.benchmark.name)} benchmark" if comparison.benchmark else "")
        + ". Every cell: the same data, parameter budget, recipe, limits and seeds.</p>",
        f"<pre>{html.escape(comparison.command)}</pre>",
        page.no_player_note(reason),
        "<h2>Negative log-likelihood</h2>",
        page.table_html(*_table_rows(comparison),
                        caption=f"NLL: {comparison.runs[0].evaluation['test']['nll_of']}; "
                                f"best.pt (the lowest validation NLL), every frame weighted equally"
                                + (f"; paper: {PAPER_CITATION}" if comparison.paper else "")),
        "<h2>Learning curves</h2>",
        f'<img class="curves" src="{page.link(comparison.files["curves"], folder)}" '
        f'alt="validation NLL against updates and seconds">',
        "<h2>Samples beside the training corpus</h2>",
        page.table_html(*_samples_rows(comparison), caption=SAMPLES_CAPTION),
    ]
    for run in shown:
        samples = [page.PageSample(r.path.name, r.path, r.png, audio.get(r.path), r.statistics)
                   for r in run.page_samples.results]
        sections += [f"<h2>{html.escape(run.label)}: samples (seed {run.seed})</h2>", page.samples_html(samples, folder)]
    page.write_page(comparison.files["page"], f"seqgate compare: "
                    f"{', '.join(row['label'] for row in comparison.rows)}", sections)
    return reason
