"""The commands as a user types them, in an empty folder: prepare -> train -> sample -> compare,
the one-line user errors, and the demo (with tiny limits)."""

import json
import os
import shutil
import subprocess
import sys

import pretty_midi
import pytest

from seqgate.data.prepare import bundled_corpus_dir, hash_split

# Limits reach the commands only through the environment, as a user or CI could set them.
TINY_LIMITS = {"SEQGATE_MAX_EPOCHS": "2"}


def seqgate(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "seqgate", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def small_corpus(folder, count=12):
    """`count` bundled chorales whose hash split puts at least one piece in every split."""
    chosen, splits = [], {"train": [], "valid": [], "test": []}
    for path in sorted(bundled_corpus_dir().glob("*.mid")):
        splits[hash_split(path.name, (0.8, 0.1, 0.1))].append(path)
    chosen = splits["valid"][:1] + splits["test"][:1]
    chosen += splits["train"][:count - len(chosen)]
    assert len(chosen) == count and all(splits.values()), "the bundled corpus cannot fill every split"
    folder.mkdir()
    for path in chosen:
        shutil.copy(path, folder / path.name)
    return folder


def test_prepare_train_sample_compare_in_an_empty_folder(tmp_path):
    corpus = small_corpus(tmp_path / "chorales")
    work = tmp_path / "work"
    work.mkdir()
    steps = [
        ("prepare", str(corpus)),
        ("train", "--cell", "gru"),
        ("sample", "-o", "out.mid"),
        ("compare", "gru", "lstm"),
    ]
    for step in steps:
        done = seqgate(*step, cwd=work, env=TINY_LIMITS)
        assert done.returncode == 0, (step, done.stdout[-2000:], done.stderr[-2000:])
    assert (work / "seqgate-data.npz").is_file()
    notes = [note for instrument in pretty_midi.PrettyMIDI(str(work / "out.mid")).instruments
             for note in instrument.notes]
    assert notes
    report = work / "runs" / "compare-gru-lstm" / "report.md"
    assert report.is_file() and "| gru |" in report.read_text() and "| lstm |" in report.read_text()
    results = json.loads((report.parent / "results.json").read_text())
    assert [run["epochs"] for run in results["runs"]] == [2, 2]  # the limit came from the environment
    assert (report.parent / "curves.png").is_file()


@pytest.mark.parametrize("args, message", [
    (("train", "--cell", "foo"), "unknown cell 'foo'"),
    (("train", "--device", "tpu"), "unknown device 'tpu'"),
    (("sample",), "no trained run"),
    (("sample", "--key", "H minor"), "names no key"),
    (("compare", "gru"), "no dataset at seqgate-data.npz"),
    (("evaluate",), "no trained run"),
])
def test_user_errors_are_one_line_and_exit_code_2(tmp_path, args, message):
    done = seqgate(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_a_mistyped_sample_option_is_answered_before_torch_loads(tmp_path):
    # The command as the entry point runs it, in a process that reports whether torch was loaded.
    code = ("import sys\nfrom seqgate.cli import main\nsys.argv = ['seqgate', 'sample', '--key', 'H']\n"
            "try:\n    main()\nexcept SystemExit as exit:\n    print(exit.code, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "names no key" in done.stderr
    assert done.stdout.split() == ["2", "False"], done.stdout


def test_demo_runs_the_pipeline_into_one_folder_and_reuses_its_runs(tmp_path):
    from seqgate.compare.demo import run_demo

    # one job: the demo's two processes at once are compare's --jobs path, tested in test_compare
    tiny = dict(max_epochs=1, params=2000, train_options={"window": 32}, jobs=1)
    result = run_demo(tmp_path / "demo", **tiny)
    where = dict(result.files)
    assert where["dataset"] == tmp_path / "demo" / "seqgate-data.npz"
    assert where["sampled MIDI"] == tmp_path / "demo" / "out.mid"
    assert where["its piano roll"] == tmp_path / "demo" / "out.png"
    for what, path in result.files:
        assert path.exists(), what
        assert tmp_path / "demo" in path.parents, what
    assert [run.cell for run in result.comparison.runs] == ["gru", "lstm"]
    assert pretty_midi.PrettyMIDI(str(tmp_path / "demo" / "out.mid")).instruments[0].notes
    again = run_demo(tmp_path / "demo", **tiny)  # prepares afresh: the same pieces, so the runs stay
    assert [run.action for run in again.comparison.runs] == ["reused", "reused"]
    assert where["report to open"].read_text().count("<audio") == 4 or again.comparison.no_players


def test_onsets_prepare_train_sample_keeps_the_repeated_notes_the_model_draws(tmp_path):
    """`prepare --onsets`, `train`, `sample`, `evaluate` as typed; a corpus of repeated eighth
    notes teaches re-strikes, and out.mid holds them as separate notes (a plain roll would merge
    each run of repeated notes into one held note)."""
    from conftest import write_midi

    for split, count in (("train", 6), ("valid", 1), ("test", 1)):
        for i in range(count):
            pitch = 60 + 2 * i
            melody = [(pitch, 0.5 * k, 0.5 * k + 0.5) for k in range(16)]  # 16 eighths, one key
            write_midi(tmp_path / "corpus" / split / f"{split}{i}.mid", [{"notes": melody + [(pitch - 12, 0, 8)]}])
    work = tmp_path / "work"
    work.mkdir()
    steps = [("prepare", str(tmp_path / "corpus"), "--onsets"), ("train", "--cell", "gru"),
             ("sample", "-o", "out.mid", "--frames", "32"), ("evaluate",)]
    results = [seqgate(*step, cwd=work, env=TINY_LIMITS) for step in steps]
    for step, result in zip(steps, results):
        assert result.returncode == 0, (step, result.stderr)
    for said in (results[1].stdout, results[3].stdout):  # train's summary and evaluate label the NLL
        assert "not the 88-key benchmark NLL" in " ".join(said.split())
    # The frames the model drew (the same seed and defaults as the command) against out.mid.
    from seqgate.training.runs import load_model
    from seqgate.data.roll import N_KEYS, read_midi_roll, roll_to_notes
    from seqgate.music.sample import generate

    model, _ = load_model(next(work.glob("runs/*/best.pt")))
    drawn = generate(model, 1, 32, seed=0)[0]
    drawn_notes = roll_to_notes(drawn[:, :N_KEYS], drawn[:, N_KEYS:])
    # The same key ending where it starts again: a re-struck note, kept as two.
    repeated = sum(1 for a in drawn_notes for b in drawn_notes if a[0] == b[0] and a[2] == b[1])
    assert repeated >= 1
    written = read_midi_roll(work / "out.mid", frames_per_quarter=2, onsets=True)
    assert roll_to_notes(written.roll, written.struck) == drawn_notes
    assert len(pretty_midi.PrettyMIDI(str(work / "out.mid")).instruments[0].notes) == len(drawn_notes)
    # A primer reaches the model with its re-strikes and starts the output: 8 eighths of C4.
    primer = tmp_path / "corpus" / "train" / "train0.mid"
    result = seqgate("sample", "-o", "primed.mid", "--primer", str(primer), "--primer-frames", "8",
                     "--frames", "8", cwd=work)
    assert result.returncode == 0, result.stderr
    primed = read_midi_roll(work / "primed.mid", frames_per_quarter=2, onsets=True)
    starts = [start for pitch, start, _ in roll_to_notes(primed.roll, primed.struck) if pitch == 60 and start < 8]
    assert starts == list(range(8))
