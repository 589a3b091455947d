"""compare: equal conditions per cell, the report's numbers, run reuse, seeds, --paper, --jobs."""

import io
import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
from rich.console import Console

from conftest import make_tiny_dataset
from seqgate.compare.compare import compare
from seqgate.settings import CompareConfig
from seqgate.compare.report import results_table
from seqgate.data.dataset import Dataset
from seqgate.data.writer import save_dataset
from seqgate.errors import UserError
from seqgate.training.evaluate import evaluate_run
from seqgate.training.runs import Run
from seqgate.model.sizing import hidden_for_params

TINY = dict(params=2000, max_epochs=2, train_options={"batch_size": 4, "window": 24})


def recording_console() -> Console:
    return Console(file=io.StringIO(), width=200)


def fake_dataset(counts, frames=4) -> Dataset:
    """A dataset with the given train/valid/test piece counts; each piece a few patterned frames."""
    rolls, splits, names = [], [], []
    for split, count in zip(("train", "valid", "test"), counts):
        for index in range(count):
            roll = np.zeros((frames, 88), dtype=bool)
            roll[np.arange(frames), 40 + (index + np.arange(frames)) % 5] = True
            rolls.append(roll)
            splits.append(split)
            names.append(f"{split}/{index}")
    return Dataset.from_rolls(rolls, splits, names, {"frames_per_quarter": 1, "source": "fake"})


def mtimes(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*.pt")}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """gru and lstm compared once on the tiny corpus; tests that change the folder copy it first."""
    root = tmp_path_factory.mktemp("compared")
    data = make_tiny_dataset(root / "tiny.npz")
    result = compare(CompareConfig(cells=["gru", "lstm"], data=data, output=root / "cmp", **TINY))
    return data, root / "cmp", result


def copy_of(compared, tmp_path):
    data, out, result = compared
    shutil.copytree(out, tmp_path / "cmp")
    return data, tmp_path / "cmp", result


def test_report_numbers_agree_with_evaluate(compared):
    data, out, first = compared
    for name in ("report.md", "results.json", "curves.png", "gru-seed0/best.pt", "lstm-seed0/best.pt"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp"))
    results = json.loads((out / "results.json").read_text())
    assert [row["cell"] for row in results["cells"]] == ["gru", "lstm"]
    for row in results["cells"]:
        run = out / f"{row['cell']}-seed0"
        assert row["hidden"] == hidden_for_params(row["cell"], 2000, head="nade")
        for split in ("train", "valid", "test"):
            assert math.isclose(row[f"{split}_nll"]["mean"], evaluate_run(run, None, split)["nll"], rel_tol=1e-9)
            assert row[f"{split}_nll"]["std"] is None  # one seed: no spread to show
        assert math.isclose(row["test_accuracy"]["mean"], evaluate_run(run, None, "test")["accuracy"])
        config = json.loads((run / "config.json").read_text())
        assert row["updates"]["mean"] == config["updates"] and row["best_epoch"]["mean"] == config["best_epoch"]
        assert config["train"]["max_epochs"] == 2 and config["train"]["params"] == 2000
        # The recipe's defaults are written out, so a change of defaults cannot pass for equal.
        assert config["train"]["lr"] is not None and config["train"]["weight_noise"] is not None
    report = (out / "report.md").read_text()
    gru = results["cells"][0]
    assert f"| gru | {gru['parameters']:,} | {gru['hidden']} | {gru['train_nll']['mean']:.3f} |" in report
    assert "seqgate compare gru lstm" in report and str(data.resolve()) in report
    assert [run.action for run in first.runs] == ["trained", "trained"]


def test_each_cell_reports_muspy_measures_of_its_samples_beside_the_corpus(compared):
    from seqgate.compare.compare import SAMPLE_PIECES
    from seqgate.music.metrics import SAMPLE_MEASURES
    from seqgate.music.sample import sample_statistics

    data, out, _ = compared
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    for row in results["cells"]:
        expected = sample_statistics(*Run(out / f"{row['cell']}-seed0").load_model(), SAMPLE_PIECES, seed=0)
        for key in SAMPLE_MEASURES:
            if expected[key] is None:
                assert row[f"sample_{key}"]["mean"] is None
            else:
                assert math.isclose(row[f"sample_{key}"]["mean"], expected[key], rel_tol=1e-9), key
        assert row["sample_polyphony"]["mean"] > 0
    gru, lstm = results["cells"]
    corpus = json.loads((out / "gru-seed0" / "config.json").read_text())["data"]["train_stats"]
    assert "| measure | gru | lstm | training corpus |" in report
    # one convention for a measure everywhere: the terminal's (rates as percentages)
    assert (f"| polyphony | {gru['sample_polyphony']['mean']:.2f} | {lstm['sample_polyphony']['mean']:.2f} | "
            f"{corpus['polyphony']:.2f} |") in report
    assert (f"| scale | {gru['sample_scale_consistency']['mean']:.1%} | "
            f"{lstm['sample_scale_consistency']['mean']:.1%} | {corpus['scale_consistency']:.1%} |") in report
    assert results["sample_measures"]["scale_consistency"]["shown_as"] == "percent"


def test_finished_runs_with_the_same_settings_are_reused_untouched(compared, tmp_path):
    data, out, first = copy_of(compared, tmp_path)
    before = mtimes(out)
    console = recording_console()
    again = compare(CompareConfig(cells=["gru", "lstm"], data=data, output=out, **TINY), console=console)
    assert [run.action for run in again.runs] == ["reused", "reused"]
    assert mtimes(out) == before  # nothing retrained
    assert "reusing the finished run" in console.file.getvalue()
    assert again.rows == first.rows


def test_an_interrupted_run_with_the_same_settings_resumes(compared, tmp_path):
    data, out, _ = copy_of(compared, tmp_path)
    config_path = out / "gru-seed0" / "config.json"
    config_path.write_text(config_path.read_text().replace('"status": "finished"', '"status": "interrupted"'))
    resumed = compare(CompareConfig(cells=["gru", "lstm"], data=data, output=out, **TINY))
    assert [run.action for run in resumed.runs] == ["resumed", "reused"]
    assert json.loads(config_path.read_text())["status"] == "finished"


def test_a_changed_setting_trains_into_a_fresh_folder_and_keeps_the_old(compared, tmp_path):
    data, out, _ = copy_of(compared, tmp_path)
    before = mtimes(out)
    changed = compare(CompareConfig(cells=["gru"], data=data, output=out, **{**TINY, "max_epochs": 1}))
    assert changed.runs[0].action == "trained" and changed.runs[0].run_dir.name == "gru-seed0-2"
    after = mtimes(out)
    assert {k: after[k] for k in before} == before
    assert json.loads((out / "results.json").read_text())["runs"][0]["epochs"] == 1


def test_two_seeds_give_mean_and_std_and_paper_says_when_data_is_no_benchmark(tiny_dataset, tmp_path):
    console = recording_console()
    result = compare(CompareConfig(cells=["gru"], data=tiny_dataset, output=tmp_path / "cmp", seeds=2, paper=True, **TINY), console=console)
    assert sorted(run.run_dir.name for run in result.runs) == ["gru-seed0", "gru-seed1"]
    assert "not one of the four benchmark corpora" in console.file.getvalue()
    assert not result.paper
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert results["paper"] is None and "paper train" not in report
    assert "Note: --paper:" in report and "not one of the four benchmark corpora" in report
    per_seed = [run["test_nll"] for run in results["runs"]]
    assert per_seed[0] != per_seed[1]
    stat = results["cells"][0]["test_nll"]
    assert math.isclose(stat["mean"], np.mean(per_seed)) and math.isclose(stat["std"], np.std(per_seed, ddof=1))
    assert f"{stat['mean']:.3f} ± {stat['std']:.3f}" in (tmp_path / "cmp" / "report.md").read_text()
    rendered = recording_console()
    rendered.print(results_table(result))
    assert "±" in rendered.file.getvalue()


def test_paper_numbers_stand_beside_the_measured_ones_on_a_benchmark(tmp_path):
    data = tmp_path / "jsb-shaped.npz"
    save_dataset(fake_dataset((229, 76, 77)), data)
    result = compare(CompareConfig(cells=["gru"], data=data, output=tmp_path / "cmp", paper=True, params=2000, max_epochs=1))
    assert result.paper and result.benchmark.name == "JSB Chorales"
    assert result.rows[0]["paper"] == {"train": 6.94, "test": 8.54}
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "paper train | paper test |" in report and "| 6.94 | 8.54 |" in report
    assert "independently (the bernoulli head)" in report  # says which head the paper's rows used
    assert "- RNN-NADE (Boulanger-Lewandowski 2012): 5.19-5.56" in report
    assert "- TCN (Bai et al. 2018): 8.10" in report and "- DMM-Aug (Krishnan et al. 2017): 6.29" in report
    assert "an importance-sampled estimate): 5.118" in report  # the strongest published NADE number
    rendered = recording_console()
    rendered.print(results_table(result))
    terminal = rendered.file.getvalue()
    assert "Published on JSB Chorales" in terminal and "5.19-5.56" in terminal and "5.118" in terminal


def test_two_heads_give_one_row_per_cell_and_head(tiny_dataset, tmp_path):
    result = compare(CompareConfig(cells=["gru"], heads=["bernoulli", "nade"], data=tiny_dataset, output=tmp_path / "cmp", **TINY))
    assert [(row["label"], row["head"]) for row in result.rows] == [("gru-bernoulli", "bernoulli"),
                                                                      ("gru-nade", "nade")]
    assert sorted(run.run_dir.name for run in result.runs) == ["gru-bernoulli-seed0", "gru-nade-seed0"]
    nade = result.rows[1]
    assert nade["head_size"] == round(0.75 * nade["hidden"]) and abs(nade["parameters"] - 2000) < 200
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "gru-nade: NADE with" in report and "gru-bernoulli: independent Bernoulli keys" in report
    assert "--head bernoulli,nade" in report
    with pytest.raises(UserError, match="unknown head"):
        compare(CompareConfig(cells=["gru"], heads=["mixture"], data=tiny_dataset, output=tmp_path / "other"))


def test_two_jobs_train_in_separate_processes(tiny_dataset, tmp_path):
    out = tmp_path / "cmp"
    result = compare(CompareConfig(cells=["gru", "lstm"], data=tiny_dataset, output=out, jobs=2, **TINY))
    assert [run.action for run in result.runs] == ["trained", "trained"]
    for cell in ("gru", "lstm"):
        log = (out / f"{cell}-seed0" / "train.log").read_text()
        assert "epoch 2" in log and "finished" in log
        assert json.loads((out / f"{cell}-seed0" / "config.json").read_text())["status"] == "finished"
    again = compare(CompareConfig(cells=["gru", "lstm"], data=tiny_dataset, output=out, jobs=2, **TINY))
    assert [run.action for run in again.runs] == ["reused", "reused"]


@pytest.mark.parametrize("cells, options, message", [
    (["gru", "foo"], {}, "unknown cell 'foo'"),
    (["gru", "gru"], {}, "named twice"),
    (["gru"], {"seeds": 0}, "--seeds must be at least 1"),
    (["gru"], {"jobs": 0}, "--jobs must be at least 1"),
    (["gru"], {"data": "missing.npz"}, "no dataset at missing.npz"),
])
def test_bad_cells_seeds_jobs_or_data_are_user_errors_before_anything_is_written(tiny_dataset, tmp_path, cells, options, message):
    options = {"data": tiny_dataset, **options}
    with pytest.raises(UserError, match=message):
        compare(CompareConfig(cells=cells, output=tmp_path / "cmp", **options))
    assert not (tmp_path / "cmp").exists()


def test_compare_batch_size_reaches_every_run_and_the_repeat_command(tiny_dataset, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import seqgate.compare.compare as compare_module
    from seqgate.cli import app
    from seqgate.compare.report import equivalent_command

    given = []

    def stop(settings, **kwargs):
        given.append(settings)
        raise UserError("stopped before training")

    monkeypatch.setattr(compare_module, "compare", stop)
    done = CliRunner().invoke(app, ["compare", "gru", "lstm", "--data", tiny_dataset, "--batch-size", "8"])
    assert isinstance(done.exception, UserError), done.output  # the stand-in stopped it, nothing else
    settings = given[0].validate()
    assert [config.batch_size for config in settings.train_configs(tiny_dataset)] == [8, 8]
    command = equivalent_command(replace(settings, output="out", train_options={"batch_size": 8, "window": 24}))
    assert "--batch-size 8" in command and "(library call; also window=24)" in command
    CliRunner().invoke(app, ["compare", "gru", "--data", tiny_dataset])
    assert given[1].train_options == {}  # not given: train's own default
