"""model.fast_rnn reproduces nn.GRU and nn.RNN (tanh): outputs, h_n, and the gradients of the input, h0 and every
parameter, in float64 (tight) and float32; and seqgate's GRU takes that path on the CPU only. Every GRU
and tanh test runs twice: on the compiled time loops (model/rnn_loops.cpp) and on the Python ones."""

import types
import warnings

import pytest
import torch
from torch import nn

from seqgate.model import fast_rnn as F
from seqgate.model import kernels
from seqgate.model.network import NextStepModel

TOL = {torch.float64: dict(rtol=1e-9, atol=1e-11), torch.float32: dict(rtol=1e-4, atol=2e-5)}


def _close(a, b, dtype, what):
    """assert_close with an absolute tolerance scaled by the tensor's magnitude:
    float32 gradients are sums over B*T terms (values up to ~30 here), so their
    rounding differs from nn.GRU's by ~1e-6 relative to the largest entry."""
    tol = dict(TOL[dtype])
    tol["atol"] = tol["atol"] * max(1.0, b.abs().max().item())
    torch.testing.assert_close(
        a, b, **tol, msg=lambda m: f"{what}: {m}"
    )


LOOPS = ("gru_forward", "gru_backward", "tanh_forward", "tanh_backward")


@pytest.fixture(params=["compiled", "python"])
def rnn_loops(request, monkeypatch):
    """Run the test on one implementation of the time loops, and check that it was the one used:
    the compiled functions were called, or the kernel was asked for and was not there."""
    calls = []
    if request.param == "python":
        monkeypatch.setattr(F, "compiled_loops", lambda build=False: calls.append(1))
    else:
        kernel = kernels.compiled_loops()
        if kernel is None:
            pytest.skip("the compiled loops could not be built here (a C++ compiler and ninja are needed)")
        counted = types.SimpleNamespace(**{name: _counted(getattr(kernel, name), calls) for name in LOOPS})
        monkeypatch.setattr(F, "compiled_loops", lambda build=False: counted)
    yield request.param
    assert calls, f"the {request.param} loops were not used"


def _counted(function, calls):
    return lambda *args: calls.append(1) or function(*args)


both_loops = pytest.mark.usefixtures("rnn_loops")


def _make(I, H, L, bias, batch_first, dtype, seed=0):
    torch.manual_seed(seed)
    g = nn.GRU(I, H, num_layers=L, bias=bias, batch_first=batch_first).to(dtype)
    # Larger-than-default weights so that gates saturate differently per unit
    # and a swapped gate or a wrong sign cannot hide in small numbers.
    with torch.no_grad():
        for p in g.parameters():
            p.uniform_(-0.8, 0.8)
    return g


def _run(fn, g, x, h0, go, gh):
    """Outputs and gradients (x, h0, params) of sum(out*go) + sum(h_n*gh)."""
    out, hn = fn(x, h0)
    loss = 0
    if go is not None:
        loss = loss + (out * go).sum()
    if gh is not None:
        loss = loss + (hn * gh).sum()
    leaves = [x] + ([h0] if h0 is not None else []) + list(g.parameters())
    grads = torch.autograd.grad(loss, leaves)
    return out.detach(), hn.detach(), grads


def _compare(g, x, h0, go, gh, dtype):
    ref = _run(lambda a, b: g(a, b), g, x, h0, go, gh)
    got = _run(
        lambda a, b: F.fast_gru(a, b, F.module_weights(g), g.batch_first),
        g, x, h0, go, gh,
    )
    _close(got[0], ref[0], dtype, "output")
    _close(got[1], ref[1], dtype, "h_n")
    names = ["input"] + (["h0"] if h0 is not None else []) + [n for n, _ in g.named_parameters()]
    assert len(got[2]) == len(ref[2]) == len(names)
    for name, a, b in zip(names, got[2], ref[2]):
        assert a is not None, name
        _close(a, b, dtype, f"grad of {name}")


SHAPES = [
    # B, T, I, H, L
    (3, 7, 5, 4, 1),
    (1, 1, 5, 4, 1),  # batch 1, T=1
    (2, 1, 3, 6, 2),  # T=1, 2 layers
    (1, 9, 4, 3, 2),  # batch 1, 2 layers
    (4, 5, 17, 9, 2),  # H not a multiple of the SIMD width
    (16, 24, 88, 41, 1),  # seqgate's shape (shorter window)
    (5, 6, 176, 32, 1),
    (2, 3, 6, 37, 1),  # H > I
]


@both_loops
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}L{}".format(*s))
@pytest.mark.parametrize("with_h0", [False, True], ids=["h0None", "h0"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["bf", "tm"])
def test_matches_nn_gru(dtype, shape, with_h0, batch_first):
    B, T, I, H, L = shape
    g = _make(I, H, L, True, batch_first, dtype)
    torch.manual_seed(1)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=dtype, requires_grad=True)
    h0 = torch.randn(L, B, H, dtype=dtype, requires_grad=True) if with_h0 else None
    go = torch.randn((B, T, H) if batch_first else (T, B, H), dtype=dtype)
    gh = torch.randn(L, B, H, dtype=dtype)
    _compare(g, x, h0, go, gh, dtype)


@both_loops
@pytest.mark.parametrize("which", ["output_only", "h_n_only"])
def test_one_output_used(which):
    # Autograd passes None for the unused output's gradient.
    dtype = torch.float64
    g = _make(6, 5, 2, True, True, dtype)
    x = torch.randn(3, 8, 6, dtype=dtype, requires_grad=True)
    h0 = torch.randn(2, 3, 5, dtype=dtype, requires_grad=True)
    go = torch.randn(3, 8, 5, dtype=dtype) if which == "output_only" else None
    gh = torch.randn(2, 3, 5, dtype=dtype) if which == "h_n_only" else None
    _compare(g, x, h0, go, gh, dtype)


@both_loops
def test_no_bias():
    dtype = torch.float64
    g = _make(7, 6, 2, False, True, dtype)
    x = torch.randn(3, 5, 7, dtype=dtype, requires_grad=True)
    h0 = torch.randn(2, 3, 6, dtype=dtype, requires_grad=True)
    _compare(g, x, h0, torch.randn(3, 5, 6, dtype=dtype), torch.randn(2, 3, 6, dtype=dtype),
             dtype)


@both_loops
def test_sum_backward_and_param_grads():
    # The benchmark's pattern: out.sum().backward() (expanded, stride-0 grad),
    # input without grad, gradients accumulated into .grad.
    torch.manual_seed(0)
    g = nn.GRU(88, 41, batch_first=True)
    x = torch.randn(4, 16, 88)
    out, hn = g(x)
    out.sum().backward()
    ref = [p.grad.clone() for p in g.parameters()]
    g.zero_grad(set_to_none=True)
    out2, hn2 = F.fast_gru(x, None, F.module_weights(g), True)
    out2.sum().backward()
    torch.testing.assert_close(out2, out, **TOL[torch.float32])
    for a, b in zip([p.grad for p in g.parameters()], ref):
        _close(a, b, torch.float32, "param grad")
        assert not a.is_inference()


@both_loops
def test_gradcheck():
    torch.manual_seed(0)
    ws = []
    for I in (3, 4):
        ws.append(tuple(torch.randn(s, dtype=torch.float64, requires_grad=True)
                        for s in [(12, I), (12, 4), (12,), (12,)]))
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    flat = [w for lw in ws for w in lw]

    def fn(x, h0, *flat):
        w = [tuple(flat[4 * k: 4 * k + 4]) for k in range(2)]
        return F.fast_gru(x, h0, w, True)

    assert torch.autograd.gradcheck(fn, (x, h0, *flat))


@both_loops
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "grad_frozen"])
def test_forward_only_modes(mode):
    # Evaluation carries h_n into the next chunk; results must match nn.GRU and
    # be ordinary tensors outside inference mode.
    torch.manual_seed(0)
    g = nn.GRU(10, 7, num_layers=2, batch_first=True)
    x1, x2 = torch.randn(3, 6, 10), torch.randn(3, 4, 10)
    ctx = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
           "grad_frozen": torch.enable_grad}[mode]
    if mode == "grad_frozen":
        g.requires_grad_(False)
    with ctx():
        r1, rh = g(x1)
        r2, rh2 = g(x2, rh)
        o1, h = F.fast_gru(x1, None, F.module_weights(g), True)
        o2, h2 = F.fast_gru(x2, h, F.module_weights(g), True)
    for a, b in [(o1, r1), (h, rh), (o2, r2), (h2, rh2)]:
        torch.testing.assert_close(a, b, **TOL[torch.float32])
        assert a.is_inference() == (mode == "inference_mode")
    if mode != "inference_mode":
        h2.add_(1)  # an ordinary tensor: in-place use must work


@both_loops
def test_carried_state_training():
    # Truncated BPTT: h_n of chunk 1 (detached) is h0 of chunk 2.
    torch.manual_seed(0)
    g = nn.GRU(8, 5, batch_first=True)
    x1, x2 = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    _, h = g(x1)
    out, hn = g(x2, h.detach())
    (out.pow(2).sum() + hn.sum()).backward()
    ref = [p.grad.clone() for p in g.parameters()]
    g.zero_grad(set_to_none=True)
    W = F.module_weights(g)
    _, h_f = F.fast_gru(x1, None, W, True)
    out_f, hn_f = F.fast_gru(x2, h_f.detach(), W, True)
    (out_f.pow(2).sum() + hn_f.sum()).backward()
    torch.testing.assert_close(out_f, out, **TOL[torch.float32])
    for a, b in zip([p.grad for p in g.parameters()], ref):
        _close(a, b, torch.float32, "param grad")


def test_predicate():
    x = torch.randn(2, 3, 4)
    g = nn.GRU(4, 5, batch_first=True)
    assert F.fast_gru_applicable(g, x)
    assert F.fast_gru_applicable(g, x, torch.zeros(1, 2, 5))
    assert F.fast_gru_applicable(g.double(), x.double())
    assert not F.fast_gru_applicable(nn.GRU(4, 5, bidirectional=True), x)
    d = nn.GRU(4, 5, num_layers=2, dropout=0.5)
    assert not F.fast_gru_applicable(d.train(), x)
    assert F.fast_gru_applicable(d.eval(), x)
    assert not F.fast_gru_applicable(nn.GRU(4, 5).half(), x.half())
    assert not F.fast_gru_applicable(nn.GRU(4, 5), x[0])  # unbatched 2-D input
    packed = nn.utils.rnn.pack_padded_sequence(x, [3, 2], batch_first=True)
    assert not F.fast_gru_applicable(g, packed)


@both_loops
def test_the_model_takes_the_fast_path_on_the_cpu_with_nn_grus_numbers(monkeypatch):
    torch.manual_seed(0)
    model = NextStepModel("gru", 12, head="bernoulli")
    x = (torch.rand(3, 20, 88) < 0.1).float()
    calls, original = [], F.fast_gru
    monkeypatch.setattr(F, "fast_gru", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    fast, fast_state = model.features(x)
    assert calls, "the GRU did not take the fast path"
    slow, slow_state = nn.GRU.forward(model.core, x)
    torch.testing.assert_close(fast, slow, **TOL[torch.float32])
    torch.testing.assert_close(fast_state, slow_state, **TOL[torch.float32])


def test_a_gru_with_dropout_between_layers_trains_through_nn_gru(monkeypatch):
    monkeypatch.setattr(F, "fast_gru", lambda *args, **kwargs: pytest.fail("fast path taken"))
    model = NextStepModel("gru", 6, layers=2, dropout=0.5, head="bernoulli").train()
    model.features(torch.zeros(2, 5, 88))


@both_loops
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("with_h0", [False, True], ids=["h0None", "h0"])
def test_the_tanh_rnn_matches_nn_rnn(dtype, layers, with_h0):
    torch.manual_seed(1)
    rnn = nn.RNN(7, 5, num_layers=layers, batch_first=True).to(dtype)
    with torch.no_grad():
        for p in rnn.parameters():
            p.uniform_(-0.8, 0.8)
    x = torch.randn(3, 9, 7, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers, 3, 5, dtype=dtype, requires_grad=True) if with_h0 else None
    go, gh = torch.randn(3, 9, 5, dtype=dtype), torch.randn(layers, 3, 5, dtype=dtype)
    results = []
    for forward in (F.tanh_forward, nn.RNN.forward):
        out, hn = forward(rnn, x, h0)
        inputs = [x, *([h0] if with_h0 else []), *rnn.parameters()]
        grads = torch.autograd.grad((out * go).sum() + (hn * gh).sum(), inputs)
        results.append((out, hn, grads))
    (out, hn, grads), (want_out, want_hn, want_grads) = results
    _close(out, want_out, dtype, "output")
    _close(hn, want_hn, dtype, "h_n")
    for got, want in zip(grads, want_grads):
        _close(got, want, dtype, "gradient")


@both_loops
def test_the_model_takes_the_fast_tanh_path_on_the_cpu(monkeypatch):
    torch.manual_seed(0)
    model = NextStepModel("tanh", 12, head="bernoulli")
    calls, original = [], F._TanhLayerFn.apply
    monkeypatch.setattr(F._TanhLayerFn, "apply", lambda *args: calls.append(1) or original(*args))
    x = (torch.rand(3, 20, 88) < 0.1).float()
    fast, _ = model.features(x)
    assert calls, "the tanh RNN did not take the fast path"
    torch.testing.assert_close(fast, nn.RNN.forward(model.core, x)[0], **TOL[torch.float32])


def test_without_the_compiled_kernel_the_python_loops_serve(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "build_folder", lambda: tmp_path / "kernel")
    # Not built yet: the model's forward asks for a finished build only, and never compiles.
    monkeypatch.setattr(kernels, "_build", lambda folder: pytest.fail("compiled without being asked"))
    assert kernels.compiled_loops(build=False) is None
    # ... and remembers that, so that the forward of every step does not search the folder again.
    folder = kernels.build_folder
    monkeypatch.setattr(kernels, "build_folder", lambda: pytest.fail("searched for a build again"))
    assert kernels.compiled_loops(build=False) is None
    monkeypatch.setattr(kernels, "build_folder", folder)
    # A build that fails: one warning, then the Python loops (and no second try in this process).
    monkeypatch.setattr(kernels, "_build", lambda folder: (_ for _ in ()).throw(OSError("no compiler\nmore")))
    with pytest.warns(RuntimeWarning, match=r"not available \(no compiler\)"):
        assert kernels.compiled_loops() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.compiled_loops() is None
    g = _make(5, 4, 1, True, True, torch.float64)
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    _compare(g, x, None, torch.randn(2, 3, 4, dtype=torch.float64), None, torch.float64)


def test_a_failed_build_before_training_is_said_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "build_folder", lambda: tmp_path / "kernel")
    monkeypatch.setattr(kernels, "_build", lambda folder: (_ for _ in ()).throw(OSError("no compiler\nmore")))
    said = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said, not warned: a warning prints the source line too
        assert kernels.prepare_compiled_loops(None, said.append) is False
    assert len(said) == 1 and "\n" not in said[0]
    assert "not available (no compiler)" in said[0] and kernels.SWITCH_VARIABLE in said[0]


def test_seqgate_compile_0_switches_the_kernel_off(monkeypatch):
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    monkeypatch.setattr(kernels, "_build", lambda folder: pytest.fail("built although switched off"))
    assert kernels.compiled_loops() is None


def test_preparing_the_kernel_says_so_only_when_it_builds(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "build_folder", lambda: tmp_path / "kernel")
    built = types.SimpleNamespace(**dict.fromkeys(LOOPS))
    monkeypatch.setattr(kernels, "_build", lambda folder: built)
    shown = []

    def status(message):
        shown.append(message)
        return warnings.catch_warnings()  # any context manager

    assert kernels.prepare_compiled_loops(status) is True
    assert shown == [kernels.BUILD_MESSAGE]
    assert kernels.compiled_loops(build=False) is built
    assert kernels.prepare_compiled_loops(status) is True
    assert shown == [kernels.BUILD_MESSAGE]  # loaded: nothing to wait for, nothing said
