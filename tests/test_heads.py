"""Output heads: the NADE is a proper distribution, its parallel likelihood is the key-by-key one,
its prediction never sees the true frame, and its drawer samples from it."""

import itertools

import pytest
import torch

from seqgate.model.heads import BernoulliHead, NADEHead

KEYS = 10


def small_nade(seed=0, keys=KEYS, size=5, features=6) -> tuple[NADEHead, torch.Tensor]:
    torch.manual_seed(seed)
    head = NADEHead(features, keys, size)
    with torch.no_grad():  # larger weights than the initial ones, so keys really interact
        head.W.mul_(6)
        head.V.mul_(6)
    return head, torch.randn(features)


def all_frames(keys=KEYS) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=keys)))


def key_by_key_logits(head: NADEHead, features: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """NADE's definition, one key at a time: logit_k = b_k + V_k . sigmoid(c + sum_{j<k} W_j v_j)."""
    b, c = head.visible_bias(features), head.hidden_bias(features)
    logits = []
    for k in range(head.n_keys):
        h = torch.sigmoid(c + head.W[:, :k] @ frame[:k])
        logits.append(b[k] + head.V[k] @ h)
    return torch.stack(logits)


def test_nade_probabilities_of_all_frames_sum_to_one():
    head, features = small_nade()
    frames = all_frames()
    with torch.no_grad():
        nll = head.nll(features.expand(len(frames), -1), frames)
    assert torch.exp(-nll.double()).sum().item() == pytest.approx(1.0, abs=1e-5)
    assert nll.min() > 0 and torch.exp(-nll).max() < 0.9  # a spread, not one frame


def test_nade_parallel_likelihood_equals_the_key_by_key_one():
    head, features = small_nade(seed=1)
    frames = all_frames()[::37]
    with torch.no_grad():
        parallel = head.conditional_logits(features.expand(len(frames), -1), frames)
        one_by_one = torch.stack([key_by_key_logits(head, features, f) for f in frames])
    torch.testing.assert_close(parallel, one_by_one, atol=1e-5, rtol=1e-5)


def test_nade_parallel_gradients_equal_the_key_by_key_ones():
    head, _ = small_nade(seed=2)
    features = torch.randn(7, 6, requires_grad=True)
    frames = all_frames()[torch.randperm(2 ** KEYS, generator=torch.Generator().manual_seed(0))[:7]]
    frames[0] = 0.0  # a silent frame beside frames of every polyphony
    weights = torch.randn(7, KEYS)
    parameters = [features, *head.parameters()]
    parallel = torch.autograd.grad((head.conditional_logits(features, frames) * weights).sum(), parameters)
    one_by_one = torch.stack([key_by_key_logits(head, features[i], frames[i]) for i in range(7)])
    expected = torch.autograd.grad((one_by_one * weights).sum(), parameters)
    for got, want in zip(parallel, expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_nade_prediction_decides_keys_in_order_without_the_true_frame():
    head, features = small_nade(seed=2)
    frames = all_frames()[::101]
    with torch.no_grad():
        _, predicted = head.nll_and_prediction(features.expand(len(frames), -1), frames)
        expected = torch.zeros(KEYS)
        for k in range(KEYS):  # greedy: each key on where p(on | keys decided below) >= 0.5
            expected[k] = float(key_by_key_logits(head, features, expected)[k] >= 0)
    assert all(torch.equal(row, expected.bool()) for row in predicted)  # same whatever the truth


def test_nade_drawer_samples_the_nade_distribution():
    keys = 4
    head, features = small_nade(seed=3, keys=keys, size=3)
    frames = all_frames(keys)
    draws = 20_000
    with torch.no_grad():
        exact = torch.exp(-head.nll(features.expand(len(frames), -1), frames))
        drawer = head.drawer(1.0, torch.Generator().manual_seed(0), draws)
        out = torch.empty(draws, keys)
        probs = drawer(features.expand(draws, -1).clone(), out)
    codes = (out * 2 ** torch.arange(keys - 1, -1, -1)).sum(1).long()
    observed = torch.bincount(codes, minlength=len(frames)).double() / draws
    assert torch.allclose(observed, exact.double(), atol=0.015)  # 4 std at p = 0.5
    # The probabilities returned are each key's conditional given the keys drawn below it.
    with torch.no_grad():
        for row in range(0, draws, 997):
            expected = torch.sigmoid(key_by_key_logits(head, features, out[row]))
            torch.testing.assert_close(probs[row], expected, atol=1e-5, rtol=1e-5)


def test_nade_drawer_caps_polyphony_from_the_lowest_key_up():
    head, features = small_nade(seed=4)
    with torch.no_grad():
        head.visible_bias.bias.fill_(5.0)  # every key wants to sound
        out = torch.empty(50, KEYS)
        head.drawer(1.0, torch.Generator().manual_seed(0), 50)(features.expand(50, -1).clone(), out, 3)
    assert (out.sum(1) <= 3).all() and (out.sum(1) == 3).any()


def test_bernoulli_head_keys_are_independent():
    torch.manual_seed(0)
    head = BernoulliHead(6, KEYS)
    features = torch.randn(6)
    frames = all_frames()
    with torch.no_grad():
        nll = head.nll(features.expand(len(frames), -1), frames)
        p = torch.sigmoid(head(features))
    expected = -(frames * torch.log(p) + (1 - frames) * torch.log1p(-p)).sum(1)
    torch.testing.assert_close(nll, expected, atol=1e-5, rtol=1e-5)
    assert torch.exp(-nll.double()).sum().item() == pytest.approx(1.0, abs=1e-5)


# ---- onset-aware heads: frames are [sounding keys | struck keys]

def stored_frames(previous: torch.Tensor) -> torch.Tensor:
    """Every frame an onset-aware dataset can hold after `previous` (its sounding part): any
    sounding keys; a key that did not sound before is struck; a held-over key struck or not."""
    keys, frames = len(previous), []
    for sounding in itertools.product([0.0, 1.0], repeat=keys):
        free = [k for k in range(keys) if sounding[k] and previous[k]]
        for bits in itertools.product([0.0, 1.0], repeat=len(free)):
            struck = [1.0 if sounding[k] and not previous[k] else 0.0 for k in range(keys)]
            for k, bit in zip(free, bits):
                struck[k] = bit
            frames.append(list(sounding) + struck)
    return torch.tensor(frames)


def onset_head(kind: str, keys=4, seed=0):
    torch.manual_seed(seed)
    head = NADEHead(6, keys, 5, onsets=True) if kind == "nade" else BernoulliHead(6, keys, onsets=True)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.mul_(4)  # larger weights, so units really interact
    return head, torch.randn(6)


@pytest.mark.parametrize("kind", ["bernoulli", "nade"])
def test_an_onset_aware_head_is_a_distribution_over_the_frames_that_can_be_stored(kind):
    head, features = onset_head(kind)
    previous_keys = torch.tensor([1.0, 0.0, 1.0, 1.0])
    frames = stored_frames(previous_keys)
    assert len(frames) == 3 ** 3 * 2  # a key that sounded before: off, held or struck again
    previous = torch.cat([previous_keys, torch.tensor([0.0, 0.0, 1.0, 0.0])]).expand(len(frames), -1)
    with torch.no_grad():
        nll = head.nll(features.expand(len(frames), -1), frames, previous)
    assert torch.exp(-nll.double()).sum().item() == pytest.approx(1.0, abs=1e-5)
    # The onset bits are priced: the same sounding keys, struck again or held, differ.
    held, restruck = frames[-1].clone(), frames[-1].clone()
    held[4:] = torch.tensor([0.0, 0.0, 0.0, 0.0])
    restruck[4:] = torch.tensor([1.0, 0.0, 1.0, 1.0])
    held[5] = 1.0  # key 1 did not sound before: struck whatever happens
    with torch.no_grad():
        pair = head.nll(features.expand(2, -1), torch.stack([held, restruck]), previous[:2])
    assert abs(pair[0] - pair[1]) > 1e-3


@pytest.mark.parametrize("kind", ["bernoulli", "nade"])
def test_an_onset_aware_drawer_draws_stored_frames_as_often_as_the_head_gives_them(kind):
    head, features = onset_head(kind, keys=3, seed=1)
    previous_keys = torch.tensor([1.0, 1.0, 0.0])
    frames = stored_frames(previous_keys)
    previous = torch.cat([previous_keys, torch.zeros(3)])
    n = 20_000
    out = torch.empty(n, 6)
    with torch.no_grad():
        draw = head.drawer(1.0, torch.Generator().manual_seed(0), n)
        draw(features.expand(n, -1), out, None, previous.expand(n, -1))
        expected = torch.exp(-head.nll(features.expand(len(frames), -1), frames, previous.expand(len(frames), -1)))
    rows, counts = torch.unique(out, dim=0, return_counts=True)
    drawn = {tuple(row): count for row, count in zip(rows.tolist(), counts.tolist())}
    assert set(drawn) <= {tuple(frame) for frame in frames.tolist()}  # only frames a dataset can hold
    for frame, p in zip(frames.tolist(), expected):
        share = drawn.get(tuple(frame), 0) / n
        assert share == pytest.approx(p.item(), abs=0.015)
