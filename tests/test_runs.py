"""The run folder: numbering, the run trained last, reuse by settings, one-line errors."""

import json
import os

import pytest

from seqgate.errors import UserError
from seqgate.training.runs import Run, compare_runs, new_compare_run, new_run, open_run


def finished_run(folder, train=None, fingerprint="abc", hidden=8, status="finished") -> Run:
    run = Run(folder)
    run.folder.mkdir(parents=True)
    run.write_config({"status": status, "train": train or {"cell": "gru"}, "model_config": {"hidden": hidden}})
    run.write_marker(fingerprint, "data.npz")
    for name in ("best.pt", "last.pt"):
        (run.folder / name).write_bytes(b"")
    return run


def test_new_runs_are_numbered_after_the_highest_of_their_cell(tmp_path):
    assert new_run("gru", tmp_path).folder == tmp_path / "gru-1"
    for name in ("gru-1", "gru-7", "gru-x", "lstm-9"):
        (tmp_path / name).mkdir()
    assert new_run("gru", tmp_path).folder == tmp_path / "gru-8"


def test_open_run_takes_latest_then_the_newest_best_checkpoint(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.pt").write_bytes(b"")
    os.utime(tmp_path / "a" / "best.pt", (1, 1))
    assert open_run(None, tmp_path).folder == tmp_path / "b"  # newest best.pt
    Run(tmp_path / "a").mark_latest()
    assert open_run(None, tmp_path).folder == tmp_path / "a"  # LATEST wins
    assert open_run(tmp_path / "b" / "best.pt").folder == tmp_path / "b"  # a checkpoint names its run


def test_open_run_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no trained run"):
        open_run(None, tmp_path)
    with pytest.raises(UserError, match="no run folder"):
        open_run(tmp_path / "nowhere")
    with pytest.raises(UserError, match="unknown checkpoint"):
        Run(tmp_path).checkpoint_path("other.pt")


def test_a_run_is_reused_only_with_the_same_settings_data_and_size(tmp_path):
    settings = {"cell": "gru", "seed": 0}
    run = finished_run(tmp_path / "gru-seed0", settings)
    assert run.reuse_action(settings, "abc", 8) == "reused"
    assert run.reuse_action({**settings, "seed": 1}, "abc", 8) is None
    assert run.reuse_action(settings, "other data", 8) is None
    assert run.reuse_action(settings, "abc", 9) is None
    unfinished = finished_run(tmp_path / "gru-seed0-2", settings, status="interrupted")
    assert unfinished.reuse_action(settings, "abc", 8) == "resumed"


def test_compare_folders_are_found_in_order_and_new_ones_never_overwrite(tmp_path):
    assert new_compare_run(tmp_path, "gru", 0).folder == tmp_path / "gru-seed0"
    for name in ("gru-seed0-3", "gru-seed0", "gru-seed0-2", "gru-seed01", "gru-seed0-x"):
        (tmp_path / name).mkdir()
    assert [r.name for r in compare_runs(tmp_path, "gru", 0)] == ["gru-seed0", "gru-seed0-2", "gru-seed0-3"]
    assert new_compare_run(tmp_path, "gru", 0).folder == tmp_path / "gru-seed0-4"


def test_a_broken_config_is_a_one_line_refusal_naming_the_file(tmp_path):
    run = Run(tmp_path)
    assert run.read_config() == {} and not run.is_finished()  # a run not started yet
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(UserError, match="config.json is not a JSON file"):
        run.read_config()
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="config.json holds a JSON list"):
        run.is_finished()


def record(epoch: int) -> dict:
    return {"epoch": epoch, "updates": 10 * epoch, "seconds": 1.5 * epoch, "train_nll": 5.0, "valid_nll": 6.0}


def test_metrics_append_and_rewrite_and_a_broken_line_is_named(tmp_path):
    run = Run(tmp_path)
    run.append_metrics(record(1))
    run.append_metrics(record(2))
    assert run.read_metrics() == [record(1), record(2)]
    run.rewrite_metrics([record(1)])
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [record(1)]
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "upd')  # a line being appended right now is left for later
    assert run.read_metrics() == [record(1)]
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('\n{"epoch": "three"}\n')
    with pytest.raises(UserError, match="metrics.jsonl, line 2: not a metrics record"):
        run.read_metrics()


def test_a_checkpoint_whose_weights_changed_after_saving_is_refused_in_one_line(tmp_path):
    """A flipped bit in a checkpoint's tensor data loads as other weights unless a digest of them
    was saved; seqgate saves one and compares it."""
    import torch

    from seqgate.model.network import NextStepModel
    from seqgate.training.runs import Checkpoint, DataRecord, load_checkpoint_file

    model = NextStepModel("gru", 4, head="bernoulli")
    run = Run(tmp_path / "run")
    run.folder.mkdir()
    run.save_checkpoint("best.pt", Checkpoint(model.config(), model.state_dict(), DataRecord()))
    assert load_checkpoint_file(run.checkpoint_path("best.pt")).epoch == 0  # intact: loads
    payload = torch.load(run.checkpoint_path("best.pt"), weights_only=True)
    flipped = payload["model"]["core.weight_hh_l0"].view(torch.int32)
    flipped[0, 0] ^= 1 << 20  # one bit of one weight, as a damaged disk or copy would
    torch.save(payload, run.checkpoint_path("best.pt"))
    with pytest.raises(UserError, match="do not match the digest"):
        load_checkpoint_file(run.checkpoint_path("best.pt"))
    del payload["weights_digest"]  # a checkpoint from before digests: loaded as it is
    torch.save(payload, run.checkpoint_path("best.pt"))
    load_checkpoint_file(run.checkpoint_path("best.pt"))
