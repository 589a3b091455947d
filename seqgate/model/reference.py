"""The recurrent cells of Chung et al. 2014, written out one equation per line.

seqgate's model (network.py) runs torch's fused nn.RNN / nn.GRU / nn.LSTM, which are fast but hide
the equations inside cuDNN or ATen kernels. This module spells the same computations out step by
step, in plain torch, so that a reader can check them against the papers and the tests can check
them against the fused layers. Nothing here is used for training.

References
  Chung, Gulcehre, Cho, Bengio 2014, "Empirical Evaluation of Gated Recurrent Neural Networks on
    Sequence Modeling", arXiv:1412.3555, sections 2 and 3 (cited below as "Chung").
  Cho et al. 2014, "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
    Machine Translation", arXiv:1406.1078 (the GRU).
  Graves 2013, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850 (the LSTM
    variant Chung et al. use).
  PyTorch documentation of nn.RNN, nn.GRU, nn.LSTM (the weight layout and gate order used here).

Weight layout (torch's own, the gate order of cells.CELLS; so weights can be taken straight from a module; see `layer_weights`):
  w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,), with G = 1 (tanh), 3 (GRU: r, z, n)
  or 4 (LSTM: i, f, g, o) blocks stacked in that order along the first axis.
The papers write one matrix W (input) and U (recurrent) per gate and omit biases; torch keeps two
bias vectors per gate, and only their sum matters, except for the GRU candidate (see below).

GRU: where the reset gate acts. Cho et al. and Chung et al. reset the previous state BEFORE the
recurrent product,  h~_t = tanh(W x_t + U (r_t * h_{t-1})).  torch resets AFTER it,
n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)).  seqgate's model runs torch's form
because it is what nn.GRU and cuDNN implement, and the fused kernel is the reason to use them: with
the reset applied after, U h_{t-1} for all three gates is one matrix product per step, independent
of r_t. (Keras offers both, calling torch's form reset_after=True.) The two forms are different
functions of the same weights, equal in size; `gru(..., reset_after=False)` gives the papers' form
for comparison. With b_hn = 0 and r_t = 1 they coincide.

GRU: the update-gate convention. Chung writes  h_t = (1 - z_t) h_{t-1} + z_t h~_t,  so z_t near 1
takes the new candidate. torch writes  h_t = (1 - z_t) n_t + z_t h_{t-1},  so z_t near 1 keeps the
old state. The two gates are related by z_torch = 1 - z_Chung, and since 1 - sigmoid(a) =
sigmoid(-a), a torch GRU equals a Chung GRU whose update-gate weights and biases are negated: the
same family of functions, labelled the other way round. This module follows torch's convention,
so that weights from nn.GRU can be used unchanged.

LSTM: peepholes. Chung's LSTM (following Graves 2013) has diagonal "peephole" weights V_i, V_f,
V_o that let the gates see the memory cell c. torch's nn.LSTM, and therefore seqgate's model, has
no peepholes; `lstm` here has none either, and the comments show, in [brackets], where the paper's
V terms would go.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqgate.model.cells import CELLS


def _affine(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """inputs @ weight.T + bias, with bias None meaning zero (a module built with bias=False)."""
    return F.linear(inputs, weight, bias)


def _check_shapes(x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                  blocks: int) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, time, inputs), got shape {tuple(x.shape)}")
    hidden = w_hh.shape[1]
    if w_ih.shape != (blocks * hidden, x.shape[2]) or w_hh.shape != (blocks * hidden, hidden):
        raise ValueError(f"weights do not fit {blocks} blocks of hidden size {hidden} and "
                         f"{x.shape[2]} inputs: w_ih {tuple(w_ih.shape)}, w_hh {tuple(w_hh.shape)}")
    if h0.shape != (x.shape[0], hidden):
        raise ValueError(f"initial state must be (batch, hidden) = ({x.shape[0]}, {hidden}), "
                         f"got {tuple(h0.shape)}")


def tanh_rnn(x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
             b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The traditional tanh RNN over a whole sequence, as nn.RNN(nonlinearity="tanh").

    x (batch, time, inputs), h0 (batch, hidden) -> (outputs (batch, time, hidden), h_T).
    """
    _check_shapes(x, h0, w_ih, w_hh, blocks=CELLS["tanh"].blocks)
    # The input projection does not depend on the state, so it is done for all steps at once.
    input_part = _affine(x, w_ih, b_ih)
    h = h0
    outputs = []
    for t in range(x.shape[1]):
        # Chung sec. 2:  h_t = g(W x_t + U h_{t-1}),  with g = tanh.
        h = torch.tanh(input_part[:, t] + _affine(h, w_hh, b_hh))
        outputs.append(h)
    return _stack(outputs, x, h0), h


def gru(x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
        b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
        reset_after: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated recurrent unit over a whole sequence; reset_after=True is nn.GRU exactly.

    reset_after=False resets h_{t-1} before the recurrent product, as Cho et al. and Chung et al.
    write it (see the module docstring). x (batch, time, inputs), h0 (batch, hidden) ->
    (outputs (batch, time, hidden), h_T).
    """
    _check_shapes(x, h0, w_ih, w_hh, blocks=CELLS["gru"].blocks)
    w_hr, w_hz, w_hn = w_hh.chunk(3, dim=0)
    b_hr, b_hz, b_hn = b_hh.chunk(3) if b_hh is not None else (None, None, None)
    # W_r x_t + b_ir, W_z x_t + b_iz, W x_t + b_in for every step at once (they ignore the state).
    input_r, input_z, input_n = _affine(x, w_ih, b_ih).chunk(3, dim=2)
    h = h0
    outputs = []
    for t in range(x.shape[1]):
        # Chung sec. 3.2, reset gate:   r_t = sigmoid(W_r x_t + U_r h_{t-1})
        r = torch.sigmoid(input_r[:, t] + _affine(h, w_hr, b_hr))
        # Chung sec. 3.2, update gate:  z_t = sigmoid(W_z x_t + U_z h_{t-1}); torch's z is 1 - this
        z = torch.sigmoid(input_z[:, t] + _affine(h, w_hz, b_hz))
        if reset_after:
            # torch / cuDNN:  n_t = tanh(W x_t + r_t * (U h_{t-1} + b_hn))
            n = torch.tanh(input_n[:, t] + r * _affine(h, w_hn, b_hn))
        else:
            # Chung sec. 3.2, candidate:    h~_t = tanh(W x_t + U (r_t * h_{t-1}))
            n = torch.tanh(input_n[:, t] + _affine(r * h, w_hn, b_hn))
        # Chung sec. 3.2:  h_t = (1 - z_t) h_{t-1} + z_t h~_t,  in torch's labelling of z:
        #                  h_t = (1 - z_t) n_t + z_t h_{t-1}
        h = (1 - z) * n + z * h
        outputs.append(h)
    return _stack(outputs, x, h0), h


def lstm(x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], w_ih: torch.Tensor,
         w_hh: torch.Tensor, b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
         ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The long short-term memory unit without peepholes over a whole sequence, as nn.LSTM.

    x (batch, time, inputs), state (h0, c0) each (batch, hidden) ->
    (outputs (batch, time, hidden), (h_T, c_T)).
    """
    h, c = state
    _check_shapes(x, h, w_ih, w_hh, blocks=CELLS["lstm"].blocks)
    if c.shape != h.shape:
        raise ValueError(f"c0 must have the shape of h0 {tuple(h.shape)}, got {tuple(c.shape)}")
    input_part = _affine(x, w_ih, b_ih)
    outputs = []
    for t in range(x.shape[1]):
        gate_i, gate_f, gate_g, gate_o = (input_part[:, t] + _affine(h, w_hh, b_hh)).chunk(4, dim=1)
        # Chung sec. 3.1, input gate:  i_t = sigmoid(W_i x_t + U_i h_{t-1} [+ V_i c_{t-1}])
        i = torch.sigmoid(gate_i)
        # Chung sec. 3.1, forget gate: f_t = sigmoid(W_f x_t + U_f h_{t-1} [+ V_f c_{t-1}])
        f = torch.sigmoid(gate_f)
        # Chung sec. 3.1, new memory:  c~_t = tanh(W_c x_t + U_c h_{t-1})
        g = torch.tanh(gate_g)
        # Chung sec. 3.1, memory cell: c_t = f_t * c_{t-1} + i_t * c~_t
        c = f * c + i * g
        # Chung sec. 3.1, output gate: o_t = sigmoid(W_o x_t + U_o h_{t-1} [+ V_o c_t])
        o = torch.sigmoid(gate_o)
        # Chung sec. 3.1, output:      h_t = o_t * tanh(c_t)
        h = o * torch.tanh(c)
        outputs.append(h)
    return _stack(outputs, x, state[0]), (h, c)


def _stack(outputs: list[torch.Tensor], x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Per-step states as (batch, time, hidden); an empty sequence gives a (batch, 0, hidden)."""
    if not outputs:
        return h0.new_zeros((x.shape[0], 0, h0.shape[1]))
    return torch.stack(outputs, dim=1)


def layer_weights(module: nn.RNN | nn.GRU | nn.LSTM, layer: int = 0,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(w_ih, w_hh, b_ih, b_hh) of one layer (forward direction) of a torch recurrent module.

    Biases are None for a module built with bias=False; the functions above treat None as zero.
    The tensors are detached views of the module's parameters.
    """
    if not isinstance(module, nn.RNNBase):
        raise TypeError(f"expected nn.RNN, nn.GRU or nn.LSTM, got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM with proj_size is not covered by cells.lstm")
    if isinstance(module, nn.RNN) and module.nonlinearity != "tanh":
        raise ValueError("cells.tanh_rnn covers nn.RNN(nonlinearity='tanh') only")
    if not 0 <= layer < module.num_layers:
        raise ValueError(f"layer {layer} out of range for a {module.num_layers}-layer module")

    def parameter(name: str) -> torch.Tensor | None:
        value = getattr(module, f"{name}_l{layer}", None)
        return None if value is None else value.detach()

    return (parameter("weight_ih"), parameter("weight_hh"),
            parameter("bias_ih"), parameter("bias_hh"))
