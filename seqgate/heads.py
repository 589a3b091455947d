"""Output heads: the distribution of frame t given the recurrent state after frame t-1.

Every head has the same interface, which is all the model (model.py) uses:

  head(features)                     the head's raw output for (batch, time, features)
  head.nll(features, targets)        NLL of each frame, keys summed: (batch, time)
  head.nll_and_prediction(features, targets)
                                     the NLL and the frame the head predicts, decided without the
                                     true keys of that frame (for frame accuracy): bool (B, T, keys)
  head.init_from_frequency(freq)     start at each key's training frequency
  head.drawer(temperature, generator, n_pieces)
                                     a callable (features (n, F), out (n, keys), max_polyphony)
                                     -> probabilities, that draws one frame per piece into `out`
  Head.count_parameters(features, n_keys)

BernoulliHead is Chung et al. 2014's output (and Boulanger-Lewandowski et al. 2012's RNN
baseline): one logit per key, the keys of a frame independent given the state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Uniform numbers for this many frames are drawn in one call: one op instead of one per frame,
# while the memory held stays bounded (256 x batch x 88 floats) however long the pieces are.
RANDOM_BLOCK_FRAMES = 256


class BernoulliHead(nn.Linear):
    """88 independent Bernoulli keys: p(key k on) = sigmoid(W_k . h + b_k).

    A subclass of nn.Linear, so its weights are head.weight / head.bias as they always were.
    """

    name = "bernoulli"

    def __init__(self, features: int, n_keys: int):
        super().__init__(features, n_keys)

    @staticmethod
    def count_parameters(features: int, n_keys: int) -> int:
        return features * n_keys + n_keys

    def nll(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self(features), targets, reduction="none").sum(-1)

    def nll_and_prediction(self, features: torch.Tensor, targets: torch.Tensor):
        """Both from one pass: a key is predicted on when its probability is >= 0.5."""
        logits = self(features)
        nll = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
        return nll, logits >= 0  # sigmoid(logit) >= 0.5

    def init_from_frequency(self, key_frequency: torch.Tensor) -> None:
        """Start at each key's training frequency (as log-odds).

        An untrained head predicts p = 0.5 for all 88 keys (about 61 nats per frame); starting from
        the frequencies puts the first epoch at the ~11 nats of the frequency baseline, and the
        recurrent weights learn the sequence instead of the marginals.
        """
        p = key_frequency.clamp(1e-4, 1 - 1e-4).to(self.bias)
        with torch.no_grad():
            self.bias.copy_(torch.log(p) - torch.log1p(-p))

    def drawer(self, temperature: float, generator: torch.Generator, n_pieces: int):
        return _BernoulliDrawer(self, temperature, generator, n_pieces)


class _BernoulliDrawer:
    """Draws frames key by key independently, from uniform numbers drawn a block ahead."""

    def __init__(self, head: BernoulliHead, temperature: float, generator: torch.Generator,
                 n_pieces: int):
        # logits / T = h (W / T)^T + b / T: dividing the weights once saves a division per step.
        self.weight_t = (head.weight / temperature).t().contiguous()
        self.bias = head.bias / temperature
        self.generator, self.n_pieces, self.n_keys = generator, n_pieces, head.out_features
        self.uniforms, self.used = None, RANDOM_BLOCK_FRAMES

    def __call__(self, features: torch.Tensor, out: torch.Tensor,
                 max_polyphony: int | None = None) -> torch.Tensor:
        probs = torch.addmm(self.bias, features, self.weight_t).sigmoid_()
        if self.used == RANDOM_BLOCK_FRAMES:
            self.uniforms = torch.rand(RANDOM_BLOCK_FRAMES, self.n_pieces, self.n_keys,
                                       generator=self.generator)
            self.used = 0
        # A key sounds when its uniform number falls below its probability: a Bernoulli draw,
        # the same thing torch.bernoulli does, with the random numbers drawn ahead.
        torch.lt(self.uniforms[self.used], probs, out=out)
        self.used += 1
        if max_polyphony is not None:
            keep_most_probable(out, probs, max_polyphony)
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


HEADS = {BernoulliHead.name: BernoulliHead}
