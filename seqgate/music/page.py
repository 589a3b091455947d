"""report.html: a page to look at and listen to what a model learned.

One HTML file with its CSS inside, and beside it (in the same folder or below it) the pictures and
audio it shows, linked by relative paths: nothing is fetched from a network, and the folder opens
the same when copied elsewhere. Each sample is its piano-roll picture, an audio player (MP3, which
every browser plays; rendered through audio.py) and its MusPy measures. Where no synthesiser is
installed the page still opens, with pictures and no players, and says why at the top.

Used by `seqgate sample --html` (one run's samples) and by `compare` (its tables, learning curves
and each cell's samples; `seqgate demo` writes one through it).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from seqgate.data.keys import key_name
from seqgate.errors import UserError
from seqgate.files import write_text_atomic
from seqgate.music.metrics import MEASURES_CAPTION, SAMPLE_MEASURES, format_measure

PAGE_NAME = "report.html"
PAGE_AUDIO_SUFFIX = ".mp3"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem;
       color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.75rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { caption-side: bottom; font-size: 0.85rem; color: #666; text-align: left; padding-top: 0.3rem; }
pre { background: #f5f5f7; padding: 0.6rem; white-space: pre-wrap; font-size: 0.85rem; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; }
.samples { display: flex; flex-wrap: wrap; gap: 1.2rem; }
figure { margin: 0; flex: 1 1 30rem; max-width: 36rem; }
figure img { width: 100%; border: 1px solid #ddd; }
figure audio { width: 100%; margin-top: 0.3rem; }
figcaption { font-size: 0.9rem; }
img.curves { max-width: 100%; border: 1px solid #ddd; }
"""


@dataclass
class PageSample:
    """One sample on the page: its MIDI file, picture, audio (None: no player) and measures."""
    title: str
    midi: Path
    picture: Path | None
    audio: Path | None
    measures: dict = field(default_factory=dict)  # metrics.roll_statistics of the piece


def render_players(midi_paths: list[Path], soundfont=None) -> tuple[dict[Path, Path], str | None]:
    """An MP3 beside each MIDI file (pieces without notes get none), or, where audio cannot be
    rendered here (no synthesiser, no SoundFont), no files and the one-line reason."""
    from seqgate.music.audio import check_can_render, render_wav

    try:
        soundfont = check_can_render(soundfont)
    except UserError as error:
        return {}, str(error)
    def render(midi: Path) -> Path | None:
        try:
            return render_wav(midi, midi.with_suffix(PAGE_AUDIO_SUFFIX), soundfont, preview=True)
        except UserError as error:
            if "no notes to render" in str(error):  # a silent sample is a sample, with no player
                return None
            raise

    # Threads: the encoder (libsndfile, called through cffi) runs without the GIL, so on two
    # cores two pieces encode at once.
    from concurrent.futures import ThreadPoolExecutor

    from seqgate.settings import available_cores

    with ThreadPoolExecutor(max_workers=max(1, min(len(midi_paths), available_cores()))) as pool:
        audio = dict(zip(midi_paths, pool.map(render, midi_paths)))
    return {midi: path for midi, path in audio.items() if path is not None}, None


def link(path: Path, page_folder: Path) -> str:
    """`path` as a relative URL from the page's folder (so a copied folder keeps working)."""
    return quote(Path(os.path.relpath(path, page_folder)).as_posix())


def table_html(headings: list[str], rows: list[list[str]], caption: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell).replace(chr(10), '<br>')}</td>" for cell in row)
                   + "</tr>" for row in rows)
    caption_html = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{caption_html}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def samples_html(samples: list[PageSample], page_folder: Path) -> str:
    """The samples side by side: picture, player, measures."""
    figures = []
    for sample in samples:
        parts = ["<figure>"]
        if sample.picture is not None:
            parts.append(f'<img src="{link(sample.picture, page_folder)}" alt="piano roll of '
                         f'{html.escape(sample.title)}">')
        if sample.audio is not None:
            parts.append(f'<audio controls preload="metadata" src="{link(sample.audio, page_folder)}">'
                         f'</audio>')
        measures = ", ".join(f"{heading} {format_measure(sample.measures, key)}"
                             for key, (heading, _) in SAMPLE_MEASURES.items() if key in sample.measures)
        parts.append(f'<figcaption><a href="{link(sample.midi, page_folder)}">{html.escape(sample.title)}'
                     f'</a>: {html.escape(measures)}</figcaption></figure>')
        figures.append("".join(parts))
    return f'<div class="samples">{"".join(figures)}</div>'


def no_player_note(reason: str | None) -> str:
    if reason is None:
        return ""
    return (f'<p class="note">No audio players on this page: {html.escape(reason)}. The pictures '
            f"and the MIDI files are all here.</p>")


def write_page(path: Path, title: str, sections: list[str]) -> Path:
    """The page: a title, then each section's HTML in order; written atomically."""
    text = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")
    write_text_atomic(path, text)
    return path


def sample_measures_rows(columns: list[tuple[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """A measures table, one measure a row: headings and rows for `columns` of (name, statistics)."""
    headings = ["measure"] + [name for name, _ in columns]
    rows = [[heading] + [format_measure(stats, key) for _, stats in columns]
            for key, (heading, _) in SAMPLE_MEASURES.items()]
    return headings, rows


def write_sample_page(report, path: Path, soundfont=None) -> tuple[Path, str | None]:
    """`path`: a page of a sample.SampleReport's pieces (pictures, players, measures) beside the
    training corpus's measures; returns it and the reason it has no players, if it has none."""
    from seqgate.music.sample import mean_statistics

    audio, reason = render_players([result.path for result in report.results], soundfont)
    samples = [PageSample(result.path.name, result.path, result.png, audio.get(result.path), result.statistics)
               for result in report.results]
    columns = [(f"mean of {len(samples)} samples", mean_statistics([r.statistics for r in report.results]))]
    if report.train_stats is not None:
        columns.append(("training corpus", report.train_stats))
    sections = [
        f"<p>{len(samples)} piece{'s' if len(samples) > 1 else ''} sampled from "
        f"<code>{html.escape(str(report.run_dir))}</code> at {report.qpm:g} quarter notes a minute"
        + (f", held to {key_name(*report.key)} (--key)" if report.key is not None else "") + ".</p>",
        no_player_note(reason),
        samples_html(samples, path.parent),
        "<h2>MusPy's measures beside the training corpus</h2>",
        table_html(*sample_measures_rows(columns), caption=MEASURES_CAPTION),
    ]
    return write_page(path, f"seqgate samples: {report.run_dir.name}", sections), reason

