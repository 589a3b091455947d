"""Files from strangers: an altered dataset, checkpoint or run folder is used if it is still valid,
else refused in one line (exit code 2), never a traceback or a huge allocation. The commands run in
a subprocess whose address space is capped at 2 GB, so an allocation a file asks for fails loudly."""

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from conftest import make_tiny_dataset
from seqgate.data.dataset import load_dataset
from seqgate.training.runs import Run
from seqgate.data.workers import FAULT_ENV

ADDRESS_SPACE = 2 << 30  # what a case may map beyond the interpreter with torch loaded

# Runs each case's seqgate command in this one process (imports paid once), under the cap;
# prints one JSON line per case: exit code, stderr, and any exception that escaped as a traceback.
# The cap counts from the address space the process holds once torch is loaded, which a CUDA
# build of torch makes several GiB larger than the CPU build.
RUNNER = r"""
import contextlib, io, json, os, resource, sys, traceback
import torch
with open("/proc/self/status") as status:
    mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (mapped + %d, mapped + %d))
from seqgate.cli import main
for case in json.loads(sys.stdin.read()):
    os.chdir(case["cwd"])
    sys.argv = ["seqgate", *case["args"]]
    err, out, code, escaped = io.StringIO(), io.StringIO(), 0, None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:
            code, escaped = -1, traceback.format_exc()
    print(json.dumps({"id": case["id"], "code": code, "stderr": err.getvalue(), "escaped": escaped}), flush=True)
""" % (ADDRESS_SPACE, ADDRESS_SPACE)


def run_capped(cases):
    """{case id: result} for [(id, args, cwd)], all run in one capped subprocess."""
    payload = json.dumps([{"id": i, "args": [str(a) for a in args], "cwd": str(cwd)} for i, args, cwd in cases])
    done = subprocess.run([sys.executable, "-c", RUNNER], input=payload, capture_output=True, text=True,
                          timeout=600)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["id"]] = result
    missing = [i for i, _, _ in cases if i not in results]
    assert not missing, f"the runner died at {missing[:1]}: {done.stderr[-2000:]}"
    return results


def assert_used_or_refused(result, may_succeed=True):
    """Success (the file still valid), or exit 2 with one line and no traceback."""
    assert result["escaped"] is None, f"{result['id']}: traceback\n{result['escaped']}"
    assert "Traceback" not in result["stderr"], result
    if result["code"] == 0 and may_succeed:
        return
    assert result["code"] == 2, result
    assert len(result["stderr"].strip().splitlines()) == 1, result


# ---- datasets

def arrays_of(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write_arrays(path, arrays: dict) -> None:
    np.savez(path, **arrays)


def format_1(arrays: dict) -> dict:
    """The same dataset as format 1 wrote it: int64 frame offsets, tempos in the JSON."""
    old = {k: v for k, v in arrays.items() if k not in ("frame_counts", "tempos", "programs")}
    old["frame_offsets"] = np.concatenate([[0], np.cumsum(arrays["frame_counts"], dtype=np.int64)])
    meta = json.loads(str(arrays["meta"]))
    meta["format_version"] = 1
    old["meta"] = np.array(json.dumps(meta))
    return old


def with_meta(arrays: dict, **changes) -> dict:
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    return {**arrays, "meta": np.array(json.dumps(meta))}


def with_header_claiming(path, member: str, count: int) -> None:
    """Rewrite one member's .npy header to claim `count` items while holding a few bytes."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (count,)})
    members[member + ".npy"] = header.getvalue() + b"\x01\x02\x03"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.npz", pieces_per_split=(4, 2, 2))


# The cases of the issue that reported them, each by name: (how to alter the arrays, format).
NAMED_DATASET_CASES = {
    "a_pitch_index_of_200": lambda a: {**a, "pitches": np.where(np.arange(len(a["pitches"])) == 3, 200, a["pitches"]).astype(np.uint8)},
    "frame_offsets_that_decrease": lambda a: (lambda o: {**o, "frame_offsets": o["frame_offsets"][::-1].copy()})(format_1(a)),
    "frame_offsets_past_the_last_note": lambda a: (lambda o: {**o, "frame_offsets": o["frame_offsets"] + np.arange(len(o["frame_offsets"]))})(format_1(a)),
    "a_split_code_of_7": lambda a: {**a, "split": np.full_like(a["split"], 7)},
    "a_frame_offset_of_10_to_the_12": lambda a: (lambda o: {**o, "frame_offsets": np.concatenate([o["frame_offsets"][:-1], [10**12]])})(format_1(a)),
    "fewer_names_than_pieces": lambda a: {**a, "names": a["names"][:-1]},
    "piece_offsets_past_the_last_frame": lambda a: {**a, "piece_offsets": a["piece_offsets"] + np.arange(len(a["piece_offsets"]))},
    "frames_per_quarter_of_minus_3": lambda a: with_meta(a, frames_per_quarter=-3),
    "pitches_stored_as_floats": lambda a: {**a, "pitches": a["pitches"].astype(np.float64)},
}


@pytest.fixture(scope="module")
def named_dataset_results(good_dataset, tmp_path_factory):
    """inspect and train on each reported case, all in one capped subprocess."""
    folder = tmp_path_factory.mktemp("named")
    cases = []
    for case, alter in NAMED_DATASET_CASES.items():
        write_arrays(folder / f"{case}.npz", alter(arrays_of(good_dataset)))
        cases.append((f"{case}:inspect", ["inspect", folder / f"{case}.npz"], folder))
        cases.append((f"{case}:train", ["train", "--data", folder / f"{case}.npz", "--max-epochs", "1",
                                        "--hidden", "4"], folder))
    return run_capped(cases)


@pytest.mark.parametrize("case", sorted(NAMED_DATASET_CASES))
def test_a_reported_dataset_case_is_one_line_refusal(case, named_dataset_results):
    for command in ("inspect", "train"):
        result = named_dataset_results[f"{case}:{command}"]
        assert_used_or_refused(result, may_succeed=False)
        assert f"{case}.npz" in result["stderr"]


def test_format_1_files_pass_the_same_checks(good_dataset, tmp_path):
    old = tmp_path / "old.npz"
    write_arrays(old, format_1(arrays_of(good_dataset)))
    assert np.array_equal(load_dataset(old).pitches, load_dataset(good_dataset).pitches)


def altered_datasets(good, folder) -> list:
    """Many altered copies of a good dataset file: every array replaced by wrong dtypes, shapes,
    out-of-range and huge values; headers that lie; bit flips; truncations."""
    arrays = arrays_of(good)
    variants = {}
    for name, value in arrays.items():
        variants[f"{name}-missing"] = {k: v for k, v in arrays.items() if k != name}
        variants[f"{name}-float"] = {**arrays, name: np.asarray(value, dtype=np.float64) if value.dtype.kind in "uif" else np.zeros(3)}
        variants[f"{name}-2d"] = {**arrays, name: np.stack([value, value]) if value.ndim else np.zeros((2, 2))}
        variants[f"{name}-empty"] = {**arrays, name: value[:0] if value.ndim else np.array("")}
        if value.dtype.kind in "ui":
            variants[f"{name}-huge"] = {**arrays, name: np.full_like(value, np.iinfo(value.dtype).max)}
            variants[f"{name}-negative"] = {**arrays, name: (value.astype(np.int64) - 2**40)}
            variants[f"{name}-shuffled"] = {**arrays, name: np.random.default_rng(0).permutation(value)}
        if value.dtype.kind == "f":
            variants[f"{name}-nan-inf"] = {**arrays, name: np.where(np.arange(len(value)) % 2, np.inf, np.nan)}
    for key, value in {"frames_per_quarter": 1e300, "n_keys": 10**12, "source": 5, "drums": "yes",
                       "tempos": [1, 2], "onsets": "yes"}.items():
        variants[f"meta-{key}"] = with_meta(arrays, **{key: value})
    variants["meta-not-an-object"] = {**arrays, "meta": np.array("[1, 2, 3]")}
    variants["meta-not-json"] = {**arrays, "meta": np.array("{nope")}
    paths = []
    for name, changed in variants.items():
        write_arrays(folder / f"{name}.npz", changed)
        paths.append(folder / f"{name}.npz")
    for member, count in (("pitches", 10**12), ("frame_counts", 2**62), ("names", 10**9)):
        path = folder / f"header-{member}-claims-{count}.npz"
        shutil.copy(good, path)
        with_header_claiming(path, member, count)
        paths.append(path)
    raw = good.read_bytes()
    rng = np.random.default_rng(7)
    for index in range(20):
        flipped = bytearray(raw)
        for position in rng.integers(0, len(raw), size=1 + index % 3):
            flipped[position] ^= 1 << int(rng.integers(8))
        (folder / f"bitflip-{index}.npz").write_bytes(bytes(flipped))
        paths.append(folder / f"bitflip-{index}.npz")
    for fraction in (0.0, 0.1, 0.5, 0.9, 0.99):
        (folder / f"truncated-{fraction}.npz").write_bytes(raw[:int(len(raw) * fraction)])
        paths.append(folder / f"truncated-{fraction}.npz")
    return paths


def members_of(path) -> dict:
    """{member name: its bytes} of a zip, in order."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(path, members: dict, compression=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def npy_header_length(data: bytes) -> int:
    """Bytes of a .npy member before its array data: magic, version, length field, header."""
    if data[6] == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    return 12 + int.from_bytes(data[8:12], "little")


def structurally_altered_datasets(good, folder) -> list:
    """The .npy headers and the zip directory themselves altered (bit flips inside the compressed
    data only break a CRC): each member's header with random bytes changed, rewritten fields
    (magic, version, length, dtype, order, shape, not a dict), and the zip's central directory and
    end record with bytes flipped, counts and offsets changed, members renamed or doubled."""
    members = members_of(good)
    rng = np.random.default_rng(11)
    variants = {}
    for name, data in members.items():
        stem = name.removesuffix(".npy")
        length = npy_header_length(data)
        for index in range(4):
            changed = bytearray(data)
            for position in rng.integers(0, length, size=1 + index):
                changed[position] = int(rng.integers(256))
            variants[f"npyheader-{stem}-bytes-{index}"] = {**members, name: bytes(changed)}
        header = data[:length].decode("latin1")
        rewritten = {
            "magic": "\x93NUMPZ" + header[6:],
            "version-9": header[:6] + "\x09\x00" + header[8:],
            "length-huge": header[:8] + "\xff\xff" + header[10:],
            "length-short": header[:8] + chr(length - 10 - 20) + "\x00" + header[10:],
            "object-dtype": header.replace(header[header.index("'descr'"):header.index(",", header.index("'descr'"))], "'descr': '|O'"),
            "fortran": header.replace("False", "True"),
            "shape-negative": header.replace(header[header.index("'shape'"):header.index(")", header.index("'shape'")) + 1], "'shape': (-5,)"),
            "shape-text": header.replace(header[header.index("'shape'"):header.index(")", header.index("'shape'")) + 1], "'shape': 'x'"),
            "not-a-dict": header[:10] + "[1, 2, 3]".ljust(length - 11) + "\n",
            "unterminated": header[:10] + "{'descr': '|u1', 'shape': (".ljust(length - 11) + "\n",
        }
        for kind, text in rewritten.items():
            variants[f"npyheader-{stem}-{kind}"] = {**members, name: text.encode("latin1") + data[length:]}
        variants[f"npyheader-{stem}-only"] = {**members, name: data[:length]}
    variants["zip-a-member-twice"] = {**members, "extra": b""}
    paths = []
    for variant, changed in variants.items():
        if variant == "zip-a-member-twice":
            with zipfile.ZipFile(folder / f"{variant}.npz", "w") as archive:
                for name, data in members.items():
                    archive.writestr(name, data)
                archive.writestr("pitches.npy", members["pitches.npy"][:-3])  # a second, shorter one
        else:
            write_members(folder / f"{variant}.npz", changed)
        paths.append(folder / f"{variant}.npz")
    for name, rename in (("pitches.npy", "../pitches.npy"), ("meta.npy", "meta.npy/"), ("split.npy", "split")):
        write_members(folder / f"zip-renamed-{name.removesuffix('.npy')}.npz",
                      {rename if member == name else member: data for member, data in members.items()})
        paths.append(folder / f"zip-renamed-{name.removesuffix('.npy')}.npz")
    raw = good.read_bytes()
    directory = raw.index(b"PK\x01\x02")  # the central directory, then the end record
    end = raw.rindex(b"PK\x05\x06")
    for index in range(12):
        flipped = bytearray(raw)
        for position in rng.integers(directory, len(raw), size=1 + index % 3):
            flipped[position] ^= 1 << int(rng.integers(8))
        paths.append(folder / f"zipdir-bitflip-{index}.npz")
        paths[-1].write_bytes(bytes(flipped))
    for field, offset, size, value in (("entries", 10, 2, 0xFFFF), ("directory-size", 12, 4, 0xFFFFFFF0),
                                       ("directory-offset", 16, 4, 0x7FFFFFFF), ("directory-offset-0", 16, 4, 0),
                                       ("comment-length", 20, 2, 0xFFFF)):
        changed = bytearray(raw)
        changed[end + offset:end + offset + size] = value.to_bytes(size, "little")
        paths.append(folder / f"zipend-{field}.npz")
        paths[-1].write_bytes(bytes(changed))
    for local, field, offset, size in ((True, "compressed-size", 18, 4), (True, "name-length", 26, 2),
                                       (False, "uncompressed-size", 24, 4), (False, "local-offset", 42, 4),
                                       (False, "method", 10, 2)):
        changed = bytearray(raw)
        start = raw.index(b"PK\x03\x04") if local else directory
        changed[start + offset:start + offset + size] = (2 ** (8 * size) - 7).to_bytes(size, "little")
        paths.append(folder / f"zip{'local' if local else 'dir'}-{field}.npz")
        paths[-1].write_bytes(bytes(changed))
    return paths


def inspect_and_train_each(paths, folder, train_every: int) -> tuple[dict, int]:
    """`inspect` on every altered file and a one-epoch `train` on every train_every-th, all in one
    capped subprocess; each used or refused in one line. Returns the results and how many refused."""
    cases = [(f"{p.stem}:inspect", ["inspect", p], folder) for p in paths]
    cases += [(f"{p.stem}:train", ["train", "--data", p, "--max-epochs", "1", "--hidden", "4",
                                   "--head", "bernoulli", "--run-dir", folder / "runs" / p.stem], folder)
              for p in paths[::train_every]]
    results = run_capped(cases)
    for result in results.values():
        assert_used_or_refused(result)
    return results, sum(result["code"] == 2 for result in results.values())


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_every_structurally_altered_dataset_is_used_or_refused_in_one_line(good_dataset, tmp_path):
    paths = structurally_altered_datasets(good_dataset, tmp_path)
    assert len(paths) > 140
    results, refused = inspect_and_train_each(paths, tmp_path, train_every=4)
    assert refused >= len(results) * 0.9
    # crafted to read as other, valid-looking data: the array shifted by a header that ends early,
    # a member whose second copy other readers would take instead
    for variant in ("npyheader-pitches-length-short", "npyheader-names-length-short", "zip-a-member-twice"):
        assert results[f"{variant}:inspect"]["code"] == 2, results[f"{variant}:inspect"]


def test_every_altered_dataset_is_used_or_refused_in_one_line(good_dataset, tmp_path):
    paths = altered_datasets(good_dataset, tmp_path)
    assert len(paths) > 80
    results, refused = inspect_and_train_each(paths, tmp_path, train_every=3)
    assert refused >= len(results) * 0.8  # almost every alteration breaks the file


def test_altered_onset_aware_files_are_used_or_refused_in_one_line(tmp_path, trained_run):
    good = make_tiny_dataset(tmp_path / "onsets.npz", pieces_per_split=(4, 2, 2), onsets=True)
    assert load_dataset(good).onsets is not None
    paths = [p for p in altered_datasets(good, tmp_path) if p.stem.startswith(("onsets-", "meta-onsets"))]
    assert len(paths) >= 8
    cases = [(f"{p.stem}:inspect", ["inspect", p], tmp_path) for p in paths]
    cases += [(f"{p.stem}:train", ["train", "--data", p, "--max-epochs", "1", "--hidden", "4", "--head", "nade",
                                   "--run-dir", tmp_path / "runs" / p.stem], tmp_path) for p in paths]
    # A plain model's checkpoint that claims onsets, or says so in a word.
    for name, onsets in (("onsets-true", True), ("onsets-text", "yes")):
        cases += sample_and_evaluate(name, copy_run(trained_run, tmp_path, name, set_config(onsets=onsets)), tmp_path)
    results = run_capped(cases)
    for result in results.values():
        assert_used_or_refused(result)
    for refused in ("onsets-missing:inspect", "onsets-huge:inspect", "onsets-float:inspect", "onsets-2d:inspect",
                    "onsets-empty:train", "meta-onsets:inspect", "onsets-true:sample", "onsets-text:evaluate"):
        assert results[refused]["code"] == 2, results[refused]
    assert results["onsets-shuffled:train"]["code"] == 0  # other bits, still a valid file


# ---- checkpoints and run folders

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, good_dataset):
    folder = tmp_path_factory.mktemp("run")
    result = subprocess.run([sys.executable, "-m", "seqgate", "train", "--data", str(good_dataset),
                             "--max-epochs", "2", "--hidden", "6", "--run-dir", str(folder / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return folder / "run"


def copy_run(run, folder, name, change=None, file="best.pt"):
    """A copy of the run whose checkpoint `file` has had change(checkpoint) applied."""
    target = folder / name
    shutil.copytree(run, target)
    if change is not None:
        checkpoint = torch.load(target / file, weights_only=True)
        change(checkpoint)
        torch.save(checkpoint, target / file)
    return target


def sample_and_evaluate(name: str, run, folder) -> list:
    """The two commands that read a run's best.pt, as run_capped cases."""
    return [(f"{name}:sample", ["sample", "--run", run, "-o", folder / "out.mid", "--frames", "4"], folder),
            (f"{name}:evaluate", ["evaluate", run], folder)]


def set_config(**changes):
    return lambda checkpoint: checkpoint["model_config"].update(changes)


NAMED_CHECKPOINT_CASES = {
    "a_hidden_size_of_10_to_the_8": set_config(hidden=10**8),
    "an_unknown_cell": set_config(cell="transformer"),
    "a_hidden_size_that_is_text": set_config(hidden="many"),
    "a_missing_tensor": lambda c: c["model"].pop(sorted(c["model"])[0]),
}


@pytest.fixture(scope="module")
def named_checkpoint_results(trained_run, tmp_path_factory):
    """sample and evaluate on each reported case, all in one capped subprocess."""
    folder = tmp_path_factory.mktemp("named-runs")
    return run_capped([case for name, change in NAMED_CHECKPOINT_CASES.items()
                       for case in sample_and_evaluate(name, copy_run(trained_run, folder, name, change), folder)])


@pytest.mark.parametrize("case", sorted(NAMED_CHECKPOINT_CASES))
def test_a_reported_checkpoint_case_is_one_line_refusal(case, named_checkpoint_results):
    for command in ("sample", "evaluate"):
        result = named_checkpoint_results[f"{case}:{command}"]
        assert_used_or_refused(result, may_succeed=False)
        assert "best.pt" in result["stderr"]


def altered_runs(run, folder) -> list:
    changes = {
        "layers-0": set_config(layers=0), "layers-huge": set_config(layers=10**6),
        "head-unknown": set_config(head="mixture"), "head-size-huge": set_config(head_size=10**9),
        "n-keys-1000": set_config(n_keys=1000), "dropout-2": set_config(dropout=2.0),
        "config-not-a-dict": lambda c: c.update(model_config=[1, 2]),
        "tensor-wrong-shape": lambda c: c["model"].update({k: torch.zeros(3, 3) for k in list(c["model"])[:1]}),
        "tensor-float64": lambda c: c["model"].update({k: v.double() for k, v in c["model"].items()}),
        "tensor-extra": lambda c: c["model"].update(extra=torch.zeros(2)),
        "data-not-a-dict": lambda c: c.update(data="x"),
        "data-grid-negative": lambda c: c["data"]["roll_format"].update(frames_per_quarter=-3),
        "data-qpm-text": lambda c: c["data"].update(median_qpm="fast"),
        "data-path-number": lambda c: c["data"].update(path=5),
    }
    runs = [copy_run(run, folder, name, change) for name, change in changes.items()]
    raw = (run / "best.pt").read_bytes()
    rng = np.random.default_rng(3)
    for index in range(12):
        target = copy_run(run, folder, f"bitflip-{index}")
        flipped = bytearray(raw)
        for position in rng.integers(0, len(raw), size=1 + index % 3):
            flipped[position] ^= 1 << int(rng.integers(8))
        (target / "best.pt").write_bytes(bytes(flipped))
        runs.append(target)
    for fraction in (0.0, 0.3, 0.8):
        target = copy_run(run, folder, f"truncated-{fraction}")
        (target / "best.pt").write_bytes(raw[:int(len(raw) * fraction)])
        runs.append(target)
    return runs


def test_every_altered_checkpoint_is_used_or_refused_in_one_line(trained_run, tmp_path):
    runs = altered_runs(trained_run, tmp_path)
    results = run_capped([case for run in runs for case in sample_and_evaluate(run.name, run, tmp_path)])
    for result in results.values():
        assert_used_or_refused(result)
    assert all(results[f"{name}:sample"]["code"] == 2 for name in ("layers-huge", "head-size-huge", "tensor-extra"))


def resume_progress(change):
    def alter(checkpoint):
        progress = json.loads(checkpoint["progress"])
        change(progress)
        checkpoint["progress"] = json.dumps(progress)
    return alter


def test_an_altered_last_checkpoint_or_run_file_is_refused_in_one_line(trained_run, good_dataset, tmp_path):
    def train_config(**changes):
        def alter(checkpoint):
            config = json.loads(checkpoint["train_config"])
            config.update(changes)
            checkpoint["train_config"] = json.dumps(config)
        return alter

    lasts = {
        "settings-hidden-huge": train_config(hidden=10**8),
        "settings-params-huge": train_config(params=10**18, hidden=None),
        "settings-unknown-field": train_config(colour="blue"),
        "settings-batch-text": train_config(batch_size="big"),
        "progress-epoch-text": resume_progress(lambda p: p.update(epoch="two")),
        "progress-not-json": lambda c: c.update(progress="{"),
        "optimizer-garbage": lambda c: c.update(optimizer={"state": 5}),
        "rng-garbage": lambda c: c.update(numpy_rng="[]"),
    }
    cases = []
    for name, change in lasts.items():
        run = copy_run(trained_run, tmp_path, name, change, file="last.pt")
        cases.append((name, ["train", "--resume", "--run-dir", run, "--max-epochs", "3"], tmp_path))
    broken_config = copy_run(trained_run, tmp_path, "config-broken")
    (broken_config / "config.json").write_text("{ not json")
    broken_metrics = copy_run(trained_run, tmp_path, "metrics-broken")
    (broken_metrics / "metrics.jsonl").write_text('{"epoch": "x"}\n')
    bad_primer = tmp_path / "primer.mid"
    bad_primer.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x05\x01\xe0MTrk\xff\xff\xff\xff")
    # compare reads a finished run's config.json to decide whether to reuse it
    comparison = tmp_path / "comparison"
    shutil.copytree(trained_run, comparison / "gru-seed0")
    (comparison / "gru-seed0" / "config.json").write_text("[]")
    cases += [
        ("primer-broken:sample", ["sample", "--run", trained_run, "-o", tmp_path / "p.mid", "--primer", bad_primer], tmp_path),
        ("config-broken:compare", ["compare", "gru", "--data", good_dataset,
                                   "--output", comparison, "--max-epochs", "1"], tmp_path),
    ]
    results = run_capped(cases)
    for result in results.values():
        assert_used_or_refused(result, may_succeed=False)
    for name in lasts:
        assert f"{name}/last.pt" in results[name]["stderr"]
    assert "config.json" in results["config-broken:compare"]["stderr"]

    # --resume rebuilds both from last.pt, which holds the whole course of the run
    resumed = run_capped([(name, ["train", "--resume", "--run-dir", run, "--max-epochs", "3"], tmp_path)
                          for name, run in (("config", broken_config), ("metrics", broken_metrics))])
    for name, run in (("config", broken_config), ("metrics", broken_metrics)):
        assert resumed[name]["code"] == 0, resumed[name]
        assert [r["epoch"] for r in Run(run).read_metrics()] == [1, 2, 3]
        assert Run(run).read_config()["status"] == "finished"


def test_a_primer_that_crashes_the_parser_costs_one_line(trained_run, tmp_path):
    from conftest import assert_one_line_error, run_cli, scale, write_midi

    primer = write_midi(tmp_path / "evil.mid", [{"notes": scale(60)}])
    env = {**os.environ, FAULT_ENV: "crash:evil.mid"}  # the parser dies on this file, as a crafted one could make it
    result = run_cli("sample", "--run", trained_run, "-o", tmp_path / "out.mid", "--primer", primer, env=env)
    assert_one_line_error(result)
    assert "evil.mid: crashed the parser" in result.stderr
    fine = run_cli("sample", "--run", trained_run, "-o", tmp_path / "out.mid", "--primer", primer, "--frames", "4")
    assert fine.returncode == 0, fine.stderr
