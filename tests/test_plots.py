"""plots.py writes complete PNGs of the expected size, with something drawn, and no temp files."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colors
from matplotlib import image

from seqgate import plots

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


def test_training_curves_draw_both_series(tmp_path):
    path = tmp_path / "curves.png"
    plots.plot_training_curves(fake_records(10, 2.0, 1.5), path, title="gru, seed 0")
    pixels = read_png(path, plots.TRAINING_CURVES_SIZE)
    # matplotlib's first two default colours are the train and valid lines.
    assert pixels_near(pixels, "tab:blue") > 50
    assert pixels_near(pixels, "tab:orange") > 50
    only_these_files(tmp_path, {"curves.png"})


def test_training_curves_tolerate_records_without_values(tmp_path):
    path = tmp_path / "curves.png"
    records = [{"epoch": 1, "updates": 10, "seconds": 1.0, "train_nll": None, "valid_nll": 5.0}]
    plots.plot_training_curves(records, path)
    read_png(path, plots.TRAINING_CURVES_SIZE)
    plots.plot_training_curves([], path)  # overwrites in place, still a whole PNG
    read_png(path, plots.TRAINING_CURVES_SIZE)
    only_these_files(tmp_path, {"curves.png"})


def test_comparison_curves_one_colour_per_cell(tmp_path):
    path = tmp_path / "compare.png"
    runs = {
        "tanh": [fake_records(8, 4.0, 1.0), fake_records(6, 4.5, 1.1)],
        "gru": [fake_records(8, 2.0, 2.0), fake_records(8, 2.2, 2.1), fake_records(7, 1.9, 1.9)],
        "lstm": [fake_records(9, 2.5, 2.5)],
    }
    plots.plot_comparison_curves(runs, path, title="JSB chorales")
    pixels = read_png(path, plots.COMPARISON_CURVES_SIZE)
    for colour in ("tab:blue", "tab:orange", "tab:green"):  # tanh, gru, lstm in order
        assert pixels_near(pixels, colour) > 100, colour
    assert pixels_near(pixels, "tab:red") == 0  # no fourth label
    only_these_files(tmp_path, {"compare.png"})


def test_comparison_curves_with_no_records_still_write_a_figure(tmp_path):
    path = tmp_path / "compare.png"
    plots.plot_comparison_curves({"gru": [[]]}, path)
    read_png(path, plots.COMPARISON_CURVES_SIZE)


def test_mean_curve_averages_seeds_on_their_common_stretch():
    first = (np.array([0.0, 10.0]), np.array([4.0, 2.0]))
    second = (np.array([0.0, 5.0, 20.0]), np.array([6.0, 4.0, 1.0]))
    grid, mean = plots._mean_curve([first, second])
    assert grid[0] == 0.0 and grid[-1] == 10.0  # stops where the shorter seed stops
    assert mean[0] == pytest.approx(5.0)
    assert mean[-1] == pytest.approx((2.0 + 3.0) / 2)  # second seed at x=10 interpolates to 3


def test_piano_roll_shows_the_notes(tmp_path):
    roll = np.zeros((64, 88), dtype=bool)
    for step in range(0, 64, 4):
        roll[step:step + 3, [39, 43, 46]] = True  # C4 E4 G4 chords
    roll[:, 0] = True  # A0 held throughout
    silent = np.zeros_like(roll)
    plots.plot_piano_roll(roll, tmp_path / "notes.png", title="sample", frames_per_quarter=2)
    plots.plot_piano_roll(silent, tmp_path / "silent.png", frames_per_quarter=2)
    with_notes = read_png(tmp_path / "notes.png", plots.PIANO_ROLL_SIZE)
    without = read_png(tmp_path / "silent.png", plots.PIANO_ROLL_SIZE)
    # Axes, ticks and labels are dark in both; the notes add a good many dark pixels.
    assert dark_pixel_count(with_notes) > dark_pixel_count(without) + 5000
    only_these_files(tmp_path, {"notes.png", "silent.png"})


def test_piano_roll_of_zero_frames_and_frame_axis(tmp_path):
    plots.plot_piano_roll(np.zeros((0, 88), dtype=bool), tmp_path / "empty.png")
    read_png(tmp_path / "empty.png", plots.PIANO_ROLL_SIZE)
    plots.plot_piano_roll(np.eye(88, dtype=bool), tmp_path / "diagonal.png")
    read_png(tmp_path / "diagonal.png", plots.PIANO_ROLL_SIZE)


def test_piano_roll_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_piano_roll(np.zeros(88), tmp_path / "flat.png")
    with pytest.raises(ValueError):
        plots.plot_piano_roll(np.zeros((4, 88)), tmp_path / "bad.png", frames_per_quarter=0)
    only_these_files(tmp_path, set())


def test_note_names_follow_scientific_pitch_notation():
    assert plots._note_name(60) == "C4"
    assert plots._note_name(21) == "A0"
    assert plots._note_name(108) == "C8"
