"""Output heads: the distribution of frame t given the recurrent state after frame t-1.

Every head has the same interface, which is all the model (network.py) uses:

  head(features)                     the head's raw output for (batch, time, features)
  head.nll(features, targets, previous)
                                     NLL of each frame, keys summed: (batch, time); previous: the
                                     frames before the targets (only onset-aware heads read them)
  head.nll_and_prediction(features, targets, previous)
                                     the NLL and the sounding keys the head predicts, decided
                                     without the true keys of that frame (for frame accuracy):
                                     bool (B, T, keys)
  head.init_from_frequency(freq)     start at each unit's training frequency (see unit_values)
  head.drawer(temperature, generator, n_pieces, logit_bias)
                                     a callable (features (n, F), out (n, width), max_polyphony,
                                     previous (n, width)) -> probabilities, that draws one frame
                                     per piece into `out`; logit_bias: None or a (units,) tensor
                                     added to every unit's logit before the temperature divides
                                     it (sample's --key lowers the keys outside the key)
  Head.count_parameters(features, n_keys, size, onsets)

Onset-aware heads (onsets=True, for `prepare --onsets` data): a frame is 2 x 88 values, the keys
that sound and the keys struck. Where a key sounds and did not sound in the frame before, it is
struck by definition; the one free onset bit is the re-strike of a key that sounds in both frames.
So the head models 88 sounding units and then 88 re-strike units (unit_values), a re-strike unit
scored only where its key is held over (sounds now and before): a proper distribution over the
frames that can be stored, an onset only on a sounding key. Its NLL is therefore of a different
quantity from the 88-key benchmark NLL (it also prices the onsets).

BernoulliHead is Chung et al. 2014's output (and Boulanger-Lewandowski et al. 2012's RNN
baseline): one logit per key, the keys of a frame independent given the state.

NADEHead is the output of RNN-NADE (Boulanger-Lewandowski et al. 2012): a NADE (Larochelle &
Murray 2011) over the keys of the frame, p(v) = prod_k p(v_k | v_<k), keys from low to high pitch,
p(v_k = 1 | v_<k) = sigmoid(b_k + V_k . sigmoid(c + W_<k v_<k)), with W and V shared over time and
the biases b and c set by the recurrent state. The running sum over keys makes all 88
conditionals of a frame cost O(88 H) together, so the exact likelihood is one parallel pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqgate.errors import UserError

# Uniform numbers for this many frames are drawn in one call: one op instead of one per frame,
# while the memory held stays bounded (256 x batch x 88 floats) however long the pieces are.
RANDOM_BLOCK_FRAMES = 256


def units_per_frame(n_keys: int, onsets: bool) -> int:
    """Values in one frame: the sounding keys, and with onsets the struck keys after them."""
    return n_keys * (2 if onsets else 1)


def unit_values(frames: torch.Tensor, previous: torch.Tensor, n_keys: int):
    """Stored onset-aware frames [sounding | struck] -> (the head's units [sounding | re-struck],
    which units are scored: the sounding ones, and a re-strike only where its key is held over).
    previous: the frames before (the model's inputs)."""
    sounding, struck = frames[..., :n_keys], frames[..., n_keys:]
    held = sounding * previous[..., :n_keys]
    return torch.cat([sounding, struck * held], -1), torch.cat([torch.ones_like(sounding), held], -1)


def stored_frame(units: torch.Tensor, previous: torch.Tensor, n_keys: int) -> None:
    """A drawn frame of units [sounding | re-struck] -> the stored form [sounding | struck], in
    place: a sounding key is struck where it is re-struck or did not sound before."""
    sounding, restruck = units[:, :n_keys], units[:, n_keys:]
    restruck.copy_(sounding * torch.maximum(restruck, 1 - previous[:, :n_keys]))


class BernoulliHead(nn.Linear):
    """88 independent Bernoulli keys: p(key k on) = sigmoid(W_k . h + b_k) (and, with onsets, 88
    re-strike units after them, each independent given the state).

    A subclass of nn.Linear, so its weights are head.weight / head.bias as they always were.
    """

    name = "bernoulli"

    def __init__(self, features: int, n_keys: int, size: int = 0, onsets: bool = False):
        super().__init__(features, units_per_frame(n_keys, onsets))
        self.n_keys, self.onsets = int(n_keys), bool(onsets)

    size = 0  # no hidden layer of its own

    @staticmethod
    def count_parameters(features: int, n_keys: int, size: int = 0, onsets: bool = False) -> int:
        units = units_per_frame(n_keys, onsets)
        return features * units + units

    def work_per_frame(self) -> int:
        """Floats one frame needs in nll(): bounds how many frames evaluation takes at once."""
        return self.out_features

    def nll(self, features: torch.Tensor, targets: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        return self._nll(self(features), targets, previous)

    def nll_and_prediction(self, features: torch.Tensor, targets: torch.Tensor,
                           previous: torch.Tensor | None = None):
        """Both from one pass: a key is predicted on when its probability is >= 0.5."""
        logits = self(features)
        return self._nll(logits, targets, previous), logits[..., :self.n_keys] >= 0  # sigmoid >= 0.5

    def _nll(self, logits: torch.Tensor, targets: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        if not self.onsets:
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
        units, scored = unit_values(targets, previous, self.n_keys)
        return (F.binary_cross_entropy_with_logits(logits, units, reduction="none") * scored).sum(-1)

    def init_from_frequency(self, key_frequency: torch.Tensor) -> None:
        """Start at each key's training frequency (as log-odds).

        An untrained head predicts p = 0.5 for all 88 keys (about 61 nats per frame); starting from
        the frequencies puts the first epoch at the ~11 nats of the frequency baseline, and the
        recurrent weights learn the sequence instead of the marginals.
        """
        p = key_frequency.clamp(1e-4, 1 - 1e-4).to(self.bias)
        with torch.no_grad():
            self.bias.copy_(torch.log(p) - torch.log1p(-p))

    def drawer(self, temperature: float, generator: torch.Generator, n_pieces: int,
               logit_bias: torch.Tensor | None = None):
        return _BernoulliDrawer(self, temperature, generator, n_pieces, logit_bias)


class _BernoulliDrawer:
    """Draws frames key by key independently, from uniform numbers drawn a block ahead."""

    def __init__(self, head: BernoulliHead, temperature: float, generator: torch.Generator,
                 n_pieces: int, logit_bias: torch.Tensor | None = None):
        # (logits + bias) / T = h (W / T)^T + (b + bias) / T: dividing the weights once saves a
        # division per step.
        self.weight_t = (head.weight / temperature).t().contiguous()
        self.bias = (head.bias if logit_bias is None else head.bias + logit_bias) / temperature
        self.generator, self.n_pieces, self.n_units = generator, n_pieces, head.out_features
        self.n_keys, self.onsets = head.n_keys, head.onsets
        self.uniforms, self.used = None, RANDOM_BLOCK_FRAMES

    def __call__(self, features: torch.Tensor, out: torch.Tensor,
                 max_polyphony: int | None = None, previous: torch.Tensor | None = None) -> torch.Tensor:
        probs = torch.addmm(self.bias, features, self.weight_t).sigmoid_()
        if self.used == RANDOM_BLOCK_FRAMES:
            self.uniforms = torch.rand(RANDOM_BLOCK_FRAMES, self.n_pieces, self.n_units,
                                       generator=self.generator)
            self.used = 0
        # A key sounds when its uniform number falls below its probability: a Bernoulli draw,
        # the same thing torch.bernoulli does, with the random numbers drawn ahead.
        torch.lt(self.uniforms[self.used], probs, out=out)
        self.used += 1
        if max_polyphony is not None:
            keep_most_probable(out[:, :self.n_keys], probs[:, :self.n_keys], max_polyphony)
        if self.onsets:
            stored_frame(out, previous, self.n_keys)
        return probs


def keep_most_probable(frame: torch.Tensor, probs: torch.Tensor, limit: int) -> None:
    """Cut each drawn frame to its `limit` most probable sounding keys, in place.

    Drawing first and cutting after keeps the model's own distribution untouched whenever a frame
    stays within the limit (the usual case), so the cap only trims the rare cluster; taking the
    top-K probabilities outright would instead sound the same K keys every time the model is
    unsure. Among the drawn keys, the ones the model was surest of are the ones worth keeping.
    """
    if limit >= frame.shape[1]:
        return
    # Undrawn keys score 0 and drawn keys their probability (> 0, or they could not be drawn),
    # so the top `limit` scores are the most probable drawn keys, plus undrawn ones to fill up,
    # which the final AND removes again. topk's indices break ties, so never more than `limit`.
    scores = probs * frame
    keep = torch.zeros_like(frame).scatter_(1, scores.topk(limit, dim=1).indices, 1.0)
    frame.mul_(keep)


class NADEHead(nn.Module):
    """A NADE over the keys of a frame whose biases the recurrent state sets (RNN-NADE).

    size: the NADE's hidden units H. Parameters: W (H x keys) and V (keys x H), shared over time;
    the state maps to the visible biases b (keys) and the hidden biases c (H). With onsets, the
    NADE runs over 176 units, the 88 sounding keys and then the 88 re-strike units (see
    unit_values): each re-strike is conditioned on the whole sounding frame, and the one NADE
    keeps the whole frame a single exact distribution.
    """

    name = "nade"

    def __init__(self, features: int, n_keys: int, size: int, onsets: bool = False):
        super().__init__()
        if size <= 0:
            raise ValueError("a NADE head needs at least one hidden unit")
        self.size, self.n_keys, self.onsets = int(size), int(n_keys), bool(onsets)
        self.n_units = units_per_frame(n_keys, onsets)
        self.visible_bias = nn.Linear(features, self.n_units)  # b from the state
        self.hidden_bias = nn.Linear(features, size)  # c from the state
        scale = 1.0 / math.sqrt(size)
        self.W = nn.Parameter(torch.empty(size, self.n_units).uniform_(-scale, scale))  # unit k into h
        self.V = nn.Parameter(torch.empty(self.n_units, size).uniform_(-scale, scale))  # h to unit k

    @staticmethod
    def count_parameters(features: int, n_keys: int, size: int = 0, onsets: bool = False) -> int:
        units = units_per_frame(n_keys, onsets)
        return features * units + units + features * size + size + 2 * units * size

    def work_per_frame(self) -> int:
        return self.n_units * self.size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The visible biases b (the logits a key would have with no key below it sounding)."""
        return self.visible_bias(features)

    def conditional_logits(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """All conditionals at once, teacher-forced: logit_k = b_k + V_k . sigmoid(c + W_<k v_<k),
        for 0/1 targets v.

        The hidden sum changes only at the keys that sound, so a frame with m of them has only
        m + 1 distinct hidden vectors (before its first sounding key, after it, ...): those are
        formed, passed through the sigmoid and multiplied by V once each, and every key takes the
        products of the hidden vector below it. The work and memory go with the frame's polyphony
        (the most of any frame in the batch), not with keys x H, the cost of the direct form.
        """
        hidden_bias = self.hidden_bias(features)
        lead, keys = hidden_bias.shape[:-1], self.n_units
        c = hidden_bias.reshape(-1, self.size)
        on = targets.reshape(-1, keys) > 0.5
        below = torch.cumsum(on, 1) - on.long()  # sounding keys strictly below each key
        most = int(on.sum(1).max()) if len(on) else 0
        key_numbers = torch.arange(keys, device=on.device).expand_as(on)
        # each frame's sounding keys from low to high, padded with the key past the last, whose
        # column of W (below) is zero
        sounding = torch.where(on, key_numbers, keys).sort(1).values[:, :most]
        columns = torch.cat([self.W.t(), self.W.new_zeros(1, self.size)])[sounding]  # (frames, m, H)
        hidden = torch.sigmoid(torch.cat([c.unsqueeze(1), c.unsqueeze(1) + columns.cumsum(1)], 1))
        products = hidden @ self.V.t()  # (frames, m + 1, keys): each distinct hidden vector's logits
        above = products.gather(1, below.unsqueeze(1)).squeeze(1)
        return self.visible_bias(features) + above.reshape(*lead, keys)

    def nll(self, features: torch.Tensor, targets: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        if not self.onsets:
            logits = self.conditional_logits(features, targets)
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
        units, scored = unit_values(targets, previous, self.n_keys)
        logits = self.conditional_logits(features, units)
        return (F.binary_cross_entropy_with_logits(logits, units, reduction="none") * scored).sum(-1)

    def nll_and_prediction(self, features: torch.Tensor, targets: torch.Tensor,
                           previous: torch.Tensor | None = None):
        """The exact NLL, and a predicted frame formed without the true keys: keys decided from
        low to high, each on where its probability given the keys decided below it is >= 0.5."""
        nll = self.nll(features, targets, previous)
        hidden = self.hidden_bias(features)
        visible = self.visible_bias(features)[..., :self.n_keys]
        predicted = torch.zeros_like(visible, dtype=torch.bool)
        for key in range(self.n_keys):
            on = visible[..., key] + torch.sigmoid(hidden) @ self.V[key] >= 0
            predicted[..., key] = on
            hidden = hidden + on.unsqueeze(-1) * self.W[:, key]
        return nll, predicted

    def init_from_frequency(self, key_frequency: torch.Tensor) -> None:
        """Start b at the keys' training log-odds, as the Bernoulli head does (the hidden units add
        to them once trained; at the start they add a small random amount)."""
        p = key_frequency.clamp(1e-4, 1 - 1e-4).to(self.visible_bias.bias)
        with torch.no_grad():
            self.visible_bias.bias.copy_(torch.log(p) - torch.log1p(-p))

    def drawer(self, temperature: float, generator: torch.Generator, n_pieces: int,
               logit_bias: torch.Tensor | None = None):
        return _NADEDrawer(self, temperature, generator, n_pieces, logit_bias)


class _NADEDrawer:
    """Draws each frame's keys in order from low to high (then, with onsets, the re-strike
    units), exactly from the NADE.

    A key that stays off changes nothing for the keys above it, so given the keys decided so far,
    the conditionals of every undecided key up to the next key drawn on are the ones computed now.
    One pass finds, for each piece, the lowest undecided key whose uniform number falls below its
    probability; that key goes on, its column joins the hidden sum, and the next pass starts above
    it. A frame costs one pass per sounding key, plus one: the work grows with the notes that
    sound, not with the 88 keys. Each key's uniform number is drawn once per frame, a block of
    frames ahead, as the Bernoulli drawer does.
    """

    def __init__(self, head: NADEHead, temperature: float, generator: torch.Generator,
                 n_pieces: int, logit_bias: torch.Tensor | None = None):
        self.head, self.temperature, self.generator = head, temperature, generator
        # logit_k = b_k + bias_k + V_k . h: a constant bias joins the state's visible biases b.
        self.logit_bias = logit_bias
        self.V_t = (head.V / temperature).t().contiguous()  # (H, units), temperature folded in
        self.W_t = head.W.t().contiguous()  # (units, H): row k is what unit k adds
        self.units = torch.arange(head.n_units)
        self.is_key = self.units < head.n_keys  # the sounding units, before any re-strike units
        self.uniforms, self.used, self.n_pieces = None, RANDOM_BLOCK_FRAMES, n_pieces

    def __call__(self, features: torch.Tensor, out: torch.Tensor,
                 max_polyphony: int | None = None, previous: torch.Tensor | None = None) -> torch.Tensor:
        head, units, n_keys = self.head, self.units, self.head.n_keys
        visible = head.visible_bias(features)
        if self.logit_bias is not None:
            visible = visible + self.logit_bias
        visible = visible / self.temperature
        hidden = head.hidden_bias(features)
        if self.used == RANDOM_BLOCK_FRAMES:
            self.uniforms = torch.rand(RANDOM_BLOCK_FRAMES, self.n_pieces, head.n_units,
                                       generator=self.generator)
            self.used = 0
        uniforms = self.uniforms[self.used]
        self.used += 1
        out.zero_()
        probs = torch.zeros_like(visible)
        undecided = torch.ones_like(out, dtype=torch.bool)
        sounding = torch.zeros(len(out), dtype=torch.long)
        while True:
            p = torch.addmm(visible, torch.sigmoid(hidden), self.V_t).sigmoid_()
            hits = (uniforms < p) & undecided
            if head.onsets:
                # A re-strike unit can only go on where its key sounds now and sounded before;
                # every sounding unit comes first, so by the time a pass reaches the re-strike
                # units, the keys that sound are settled.
                hits[:, n_keys:] &= (out[:, :n_keys] * previous[:, :n_keys]).bool()
            found = hits.any(1)
            # Every undecided unit up to the first hit (all of them, in a row with none) is
            # decided now, with the probability it has given the units decided below it.
            last = torch.where(found, hits.to(torch.uint8).argmax(1), head.n_units)
            upto = units <= last.unsqueeze(1)
            torch.where(undecided & upto, p, probs, out=probs)
            if not bool(found.any()):
                break
            undecided &= ~upto
            struck = (units == last.unsqueeze(1)) & found.unsqueeze(1)
            out += struck
            hidden.addmm_(struck.to(hidden.dtype), self.W_t)  # the struck unit's column joins the sum
            if max_polyphony is not None:
                # The cap: once a piece has `max_polyphony` keys on, every key above them stays off,
                # its probability the one it has given the keys below.
                sounding += found & (last < n_keys)
                full = (sounding >= max_polyphony).unsqueeze(1) & self.is_key
                p = torch.addmm(visible, torch.sigmoid(hidden), self.V_t).sigmoid_()
                torch.where(undecided & full, p, probs, out=probs)
                undecided &= ~full
        if head.onsets:
            stored_frame(out, previous, n_keys)
        return probs


HEADS = {BernoulliHead.name: BernoulliHead, NADEHead.name: NADEHead}


def check_head(head: str) -> str:
    """The head's name in lower case; UserError for a head seqgate does not have."""
    head = str(head).lower()
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return head
