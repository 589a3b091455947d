"""Several trained models as one predictive distribution: an exact likelihood, like each member's.

The ensemble's probability of frame t is the mean of its members' probabilities of that frame,
each member reading the same earlier frames with its own recurrent state:

    p(v_t | v_<t) = (1/K) sum_k p_k(v_t | v_<t)

a proper distribution over frames, so its NLL (-log of the mean, taken with logsumexp over the
members' per-frame log-likelihoods) is as exact as a single model's and is compared with the
same published numbers. Averaging probabilities, not logits, is what keeps it exact for a NADE
head, whose frame probability is a product over keys.

For frame accuracy the ensemble predicts a key where most members predict it (a member's
predicted frame is decided without the true keys, as evaluate requires).

Ensemble has the methods evaluation uses (score, work_per_frame, n_keys, eval/train), so
training/evaluate.py scores it as it scores one model.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from seqgate.errors import UserError
from seqgate.model.network import NextStepModel


class Ensemble(nn.Module):
    def __init__(self, members: Sequence[NextStepModel]):
        super().__init__()
        if not members:
            raise UserError("an ensemble needs at least one run")
        first = members[0]
        for member in members[1:]:
            if (member.n_keys, member.onsets) != (first.n_keys, first.onsets):
                raise UserError("the runs of an ensemble must model the same frames "
                                "(keys and onsets alike)")
        self.members = nn.ModuleList(members)
        self.n_keys = first.n_keys
        self.onsets = first.onsets
        self.hidden = max(member.hidden for member in members)  # for thread use, as one model's
        self.cell = "+".join(member.cell for member in members)
        self.head_name = "+".join(sorted({member.head_name for member in members}))

    def work_per_frame(self) -> int:
        # members are scored one after another, so a chunk holds one member's work at a time
        return max(member.work_per_frame() for member in self.members)

    def n_parameters(self) -> int:
        return sum(member.n_parameters() for member in self.members)

    def score(self, inputs: torch.Tensor, targets: torch.Tensor, state=None):
        """(nll (batch, time) of the mean distribution, majority-predicted frames, members' states)."""
        states = state if state is not None else [None] * len(self.members)
        log_likelihoods, votes, next_states = [], None, []
        for member, member_state in zip(self.members, states):
            nll, predicted, member_state = member.score(inputs, targets, member_state)
            log_likelihoods.append(-nll)
            votes = predicted.to(torch.int16) if votes is None else votes + predicted
            next_states.append(member_state)
        mixed = torch.logsumexp(torch.stack(log_likelihoods), 0) - math.log(len(self.members))
        return -mixed, votes * 2 > len(self.members), next_states
