"""plots.py writes complete PNGs of the expected size and no temp files, and each figure shows
what its test name says: the figure is caught as it is saved and its axes, lines, legend and image
are inspected, since a PNG's mere existence says nothing about what is drawn in it."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colors
from matplotlib import image
from matplotlib.figure import Figure

from seqgate.music import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_records(epochs: int, start_nll: float, seconds_per_epoch: float,
                 updates_per_epoch: int = 50) -> list[dict]:
    """metrics.jsonl-like records of a run whose NLL falls towards a floor."""
    records = []
    for epoch in range(1, epochs + 1):
        records.append({"epoch": epoch, "updates": epoch * updates_per_epoch,
                        "seconds": epoch * seconds_per_epoch,
                        "train_nll": 3.0 + start_nll / epoch, "valid_nll": 3.5 + start_nll / epoch,
                        "lr": 1e-3})
    return records


def read_png(path, size_inches: tuple[float, float]) -> np.ndarray:
    """The image as (height, width, channels) floats, after checking signature and size."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)
    width, height = (round(side * plots.FIGURE_DPI) for side in size_inches)
    assert pixels.shape[:2] == (height, width)
    return pixels


def dark_pixel_count(pixels: np.ndarray) -> int:
    return int(np.count_nonzero(pixels[..., :3].mean(axis=2) < 0.5))


def pixels_near(pixels: np.ndarray, colour_name: str, tolerance: float = 0.03) -> int:
    """How many pixels have (about) the named colour."""
    target = np.array(colors.to_rgb(colour_name))
    return int(np.count_nonzero(np.abs(pixels[..., :3] - target).max(axis=2) < tolerance))


def only_these_files(folder, names: set[str]) -> None:
    assert {entry.name for entry in folder.iterdir()} == names


@pytest.fixture
def saved_figures(monkeypatch) -> list[Figure]:
    """Every Figure that plots.py saves, in order; the PNG is still written by the real savefig."""
    figures = []
    real_savefig = Figure.savefig

    def catching_savefig(figure, *args, **kwargs):
        figures.append(figure)
        return real_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", catching_savefig)
    return figures


def legend_texts(axes) -> list[str]:
    legend = axes.get_legend()
    return [text.get_text() for text in legend.get_texts()] if legend else []


def texts_in(axes) -> list[str]:
    return [text.get_text() for text in axes.texts]


def pixel_at(axes, pixels: np.ndarray, x: float, y: float) -> np.ndarray:
    """The PNG's RGB where data point (x, y) of `axes` was drawn (display y runs bottom-up)."""
    column, row = axes.transData.transform((x, y))
    return pixels[pixels.shape[0] - 1 - int(row), int(column), :3]


def is_dark(rgb: np.ndarray) -> bool:
    return float(rgb.mean()) < 0.5


def test_training_curves_draw_train_and_valid_nll_against_epoch(tmp_path, saved_figures):
    path = tmp_path / "curves.png"
    records = fake_records(10, 2.0, 1.5)
    plots.plot_training_curves(records[::-1], path, title="gru, seed 0")  # order must not matter
    pixels = read_png(path, plots.TRAINING_CURVES_SIZE)
    # matplotlib's first two default colours are the train and valid lines.
    assert pixels_near(pixels, "tab:blue") > 50
    assert pixels_near(pixels, "tab:orange") > 50
    only_these_files(tmp_path, {"curves.png"})

    [figure] = saved_figures
    [axes] = figure.axes
    train, valid = axes.get_lines()
    for line, key in ((train, "train_nll"), (valid, "valid_nll")):
        assert list(line.get_xdata()) == [record["epoch"] for record in records]
        assert list(line.get_ydata()) == [record[key] for record in records]
    assert legend_texts(axes) == ["train", "valid"]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("epoch", "NLL (nats per frame)")
    assert axes.get_title() == "gru, seed 0"


def test_training_curves_skip_missing_values_and_say_when_there_are_none(tmp_path, saved_figures):
    path = tmp_path / "curves.png"
    records = [{"epoch": 1, "updates": 10, "seconds": 1.0, "train_nll": None, "valid_nll": 5.0}]
    plots.plot_training_curves(records, path)
    read_png(path, plots.TRAINING_CURVES_SIZE)
    plots.plot_training_curves([], path)  # overwrites in place, still a whole PNG
    read_png(path, plots.TRAINING_CURVES_SIZE)
    only_these_files(tmp_path, {"curves.png"})

    partial, empty = (figure.axes[0] for figure in saved_figures)
    [valid] = partial.get_lines()  # no train line: its only value is missing
    assert (list(valid.get_xdata()), list(valid.get_ydata())) == ([1.0], [5.0])
    assert legend_texts(partial) == ["valid"]
    assert texts_in(partial) == []
    assert empty.get_lines() == [] and empty.get_legend() is None
    assert texts_in(empty) == ["no evaluations recorded"]


COMPARED_RUNS = {
    "tanh": [fake_records(8, 4.0, 1.0), fake_records(6, 4.5, 1.1)],
    "gru": [fake_records(8, 2.0, 2.0), fake_records(8, 2.2, 2.1), fake_records(7, 1.9, 1.9)],
    "lstm": [fake_records(9, 2.5, 2.5)],
}
# Per cell: one thin line per seed plus a thick mean, or a single thick line for one seed.
LINES_PER_CELL = {"tanh": 3, "gru": 4, "lstm": 1}


def test_comparison_curves_one_colour_per_cell(tmp_path, saved_figures):
    path = tmp_path / "compare.png"
    plots.plot_comparison_curves(COMPARED_RUNS, path, title="JSB chorales")
    pixels = read_png(path, plots.COMPARISON_CURVES_SIZE)
    for colour in ("tab:blue", "tab:orange", "tab:green"):  # tanh, gru, lstm in order
        assert pixels_near(pixels, colour) > 100, colour
    assert pixels_near(pixels, "tab:red") == 0  # no fourth label
    only_these_files(tmp_path, {"compare.png"})

    [figure] = saved_figures
    for axes in figure.axes:
        lines = axes.get_lines()
        first = 0
        for colour, (label, count) in zip(("tab:blue", "tab:orange", "tab:green"),
                                          LINES_PER_CELL.items()):
            cell_colours = {colors.to_hex(line.get_color()) for line in lines[first:first + count]}
            assert cell_colours == {colors.to_hex(colour)}, label
            first += count
        assert first == len(lines)


def test_comparison_curves_draw_each_seed_thin_and_the_mean_thick(tmp_path, saved_figures):
    plots.plot_comparison_curves(COMPARED_RUNS, tmp_path / "compare.png")
    [figure] = saved_figures
    by_updates, by_seconds = figure.axes
    for axes in (by_updates, by_seconds):
        assert len(axes.get_lines()) == sum(LINES_PER_CELL.values())
        thick = [line for line in axes.get_lines() if line.get_linewidth() > 2]
        assert [line.get_label() for line in thick] == [
            "tanh (mean of 2 seeds)", "gru (mean of 3 seeds)", "lstm"]
    assert legend_texts(by_updates) == ["tanh (mean of 2 seeds)", "gru (mean of 3 seeds)", "lstm"]
    # tanh's mean spans the updates both seeds reach (50..300) and starts at their mean NLL.
    tanh_mean = by_updates.get_lines()[2]
    assert (tanh_mean.get_xdata()[0], tanh_mean.get_xdata()[-1]) == (50.0, 300.0)
    assert tanh_mean.get_ydata()[0] == pytest.approx(((3.5 + 4.0) + (3.5 + 4.5)) / 2)


def test_comparison_curves_plot_updates_left_and_seconds_right(tmp_path, saved_figures):
    plots.plot_comparison_curves(COMPARED_RUNS, tmp_path / "compare.png", title="JSB chorales")
    [figure] = saved_figures
    by_updates, by_seconds = figure.axes
    first_tanh_seed = COMPARED_RUNS["tanh"][0]
    valid = [record["valid_nll"] for record in first_tanh_seed]
    for axes, x_key in ((by_updates, "updates"), (by_seconds, "seconds")):
        seed_line = axes.get_lines()[0]
        assert list(seed_line.get_xdata()) == [record[x_key] for record in first_tanh_seed]
        assert list(seed_line.get_ydata()) == valid
        lstm_line = axes.get_lines()[-1]
        assert list(lstm_line.get_xdata()) == [record[x_key] for record in COMPARED_RUNS["lstm"][0]]
    assert by_updates.get_xlabel() == "parameter updates"
    assert by_seconds.get_xlabel() == "wall-clock time (seconds)"
    assert by_updates.get_ylabel() == "validation NLL (nats per frame)"
    assert figure.get_suptitle() == "JSB chorales"


def test_comparison_curves_put_nll_on_a_log_scale_only_when_all_values_are_positive(
        tmp_path, saved_figures):
    plots.plot_comparison_curves(COMPARED_RUNS, tmp_path / "positive.png")
    odd = [{"updates": 10, "seconds": 1.0, "valid_nll": 0.0},
           {"updates": 20, "seconds": 2.0, "valid_nll": 1.0}]
    plots.plot_comparison_curves({"gru": [odd]}, tmp_path / "zero.png")  # log would drop the 0
    positive, zero = saved_figures
    # The y axis is shared, so the seconds panel follows the updates panel.
    assert [axes.get_yscale() for axes in positive.axes] == ["log", "log"]
    assert [axes.get_yscale() for axes in zero.axes] == ["linear", "linear"]


def test_comparison_curves_with_no_records_still_write_a_figure(tmp_path, saved_figures):
    path = tmp_path / "compare.png"
    plots.plot_comparison_curves({"gru": [[]]}, path)
    read_png(path, plots.COMPARISON_CURVES_SIZE)
    [figure] = saved_figures
    by_updates, by_seconds = figure.axes
    assert by_updates.get_lines() == [] and by_seconds.get_lines() == []
    assert by_updates.get_legend() is None
    assert texts_in(by_updates) == ["no evaluations recorded"]


def test_mean_curve_averages_seeds_on_their_common_stretch():
    first = (np.array([0.0, 10.0]), np.array([4.0, 2.0]))
    second = (np.array([2.0, 5.0, 20.0]), np.array([6.0, 4.0, 1.0]))
    grid, mean = plots.mean_curve([first, second])
    # Starts where the later seed starts and stops where the shorter seed stops.
    assert (grid[0], grid[-1], len(grid)) == (2.0, 10.0, plots.MEAN_CURVE_POINTS)
    assert mean[0] == pytest.approx((3.6 + 6.0) / 2)  # first seed at x=2 interpolates to 3.6
    assert mean[-1] == pytest.approx((2.0 + 3.0) / 2)  # second seed at x=10 interpolates to 3


def test_piano_roll_shows_the_notes_with_low_pitches_at_the_bottom(tmp_path, saved_figures):
    roll = np.zeros((64, 88), dtype=bool)
    for step in range(0, 64, 4):
        roll[step:step + 3, [39, 43, 46]] = True  # C4 E4 G4 chords, frames 0-2 of every 4
    roll[:, 0] = True  # A0 held throughout
    silent = np.zeros_like(roll)
    plots.plot_piano_roll(roll, tmp_path / "notes.png", title="sample", frames_per_quarter=2)
    plots.plot_piano_roll(silent, tmp_path / "silent.png", frames_per_quarter=2)
    with_notes = read_png(tmp_path / "notes.png", plots.PIANO_ROLL_SIZE)
    without = read_png(tmp_path / "silent.png", plots.PIANO_ROLL_SIZE)
    # Axes, ticks and labels are dark in both; the notes add a good many dark pixels.
    assert dark_pixel_count(with_notes) > dark_pixel_count(without) + 5000
    only_these_files(tmp_path, {"notes.png", "silent.png"})

    figure, silent_figure = saved_figures
    [axes] = figure.axes
    [picture] = axes.images
    assert np.array_equal(picture.get_array(), roll.T.astype(np.float32))  # keys on rows
    assert not silent_figure.axes[0].images[0].get_array().any()
    # 64 frames at 2 per quarter are 16 quarter notes; rows are centred on MIDI pitches 21..108.
    assert picture.get_extent() == [0.0, 32.0, 20.5, 108.5]
    assert axes.get_xlim() == (0.0, 32.0) and axes.get_ylim() == (20.5, 108.5)
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("quarter notes", "pitch")
    assert axes.get_title() == "sample"
    assert [label.get_text() for label in axes.get_yticklabels()] == [
        f"C{octave}" for octave in range(1, 9)]
    # In the PNG itself: the held A0 is the bottom row, the C4 of the first chord sounds for
    # frames 0-2 (quarters 0-1.5) but not frame 3, and the top key is silent. A roll drawn upside
    # down, or with frames instead of quarters on x, would fail these.
    assert is_dark(pixel_at(axes, with_notes, 10.0, 21))
    assert is_dark(pixel_at(axes, with_notes, 0.75, 60))
    assert not is_dark(pixel_at(axes, with_notes, 1.75, 60))  # frame 3: chord released
    assert not is_dark(pixel_at(axes, with_notes, 10.0, 107))


def test_piano_roll_without_frames_per_quarter_counts_frames_on_x(tmp_path, saved_figures):
    plots.plot_piano_roll(np.zeros((0, 88), dtype=bool), tmp_path / "empty.png")
    read_png(tmp_path / "empty.png", plots.PIANO_ROLL_SIZE)
    plots.plot_piano_roll(np.eye(88, dtype=bool), tmp_path / "diagonal.png")
    diagonal_pixels = read_png(tmp_path / "diagonal.png", plots.PIANO_ROLL_SIZE)

    empty, diagonal = (figure.axes[0] for figure in saved_figures)
    assert len(empty.images) == 0  # nothing to draw, but still a frame axis of unit width
    assert empty.get_xlabel() == "frames" and empty.get_xlim() == (0.0, 1.0)
    assert diagonal.get_xlabel() == "frames" and diagonal.get_xlim() == (0.0, 88.0)
    assert diagonal.images[0].get_extent() == [0.0, 88.0, 20.5, 108.5]
    # Frame k sounds MIDI pitch 21 + k: the diagonal rises from bottom left to top right.
    for frame in (5, 40, 80):
        assert is_dark(pixel_at(diagonal, diagonal_pixels, frame + 0.5, 21 + frame))
        assert not is_dark(pixel_at(diagonal, diagonal_pixels, frame + 0.5, 108 - frame))


def test_piano_roll_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_piano_roll(np.zeros(88), tmp_path / "flat.png")
    with pytest.raises(ValueError):
        plots.plot_piano_roll(np.zeros((4, 88)), tmp_path / "bad.png", frames_per_quarter=0)
    only_these_files(tmp_path, set())


def test_note_names_follow_scientific_pitch_notation():
    assert plots.note_name(60) == "C4"
    assert plots.note_name(21) == "A0"
    assert plots.note_name(108) == "C8"
