"""A GRU and a tanh RNN for the CPU with exactly nn.GRU's and nn.RNN's parameters, outputs and
gradients, and a fraction of their cost at seqgate's sizes.

On the CPU torch's nn.LSTM runs one oneDNN primitive per layer, while nn.GRU runs ATen's generic
per-step loop differentiated op by op (about 20 small autograd nodes a time step), which made the
GRU, the paper's cheaper unit, the slower cell. oneDNN's matching "linear-before-reset" GRU is not
reachable from torch (aten::mkldnn_rnn_layer builds an LSTM whatever its mode says). So this is a
hand-written autograd Function:

* the input projections of the whole window are one matmul (the r and z hidden biases folded in),
  and the weight, bias and input gradients are single matmuls and sums over all steps after the
  backward loop;
* the backward uses that a GRU step is linear in dL/dh_t once the forward activations are known,
  so the loop through time is elementwise products and one (B x 3H) . (3H x H) matmul a step;
* both loops are compiled (rnn_loops.cpp: one matmul and one fused, vectorised loop a step) where
  seqgate.model.kernels can build them, and otherwise in-place ATen calls (5 a forward step, 3 a
  backward step) under inference_mode, with the same numbers to float rounding.

torch's gate order r, z, n, the reset applied after the recurrent product:
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

gru_forward(module, inputs, h0) takes this path where fast_gru_applicable says it reproduces the
module (CPU, float32/64, unidirectional, no dropout between layers while training) and calls
nn.GRU otherwise, so a GPU keeps cuDNN; tanh_forward does the same for a tanh nn.RNN, whose
generic loop lags torch's oneDNN LSTM too. tests/test_fast_rnn.py checks outputs and every
gradient against torch's layers.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from seqgate.model.kernels import compiled_loops

Weights = Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]


def _project(x, w_ih, b_ih, b_hh, H, tdim):
    """Input projections of the whole window: (G, N) before the loop.

    G (.., 3H) = [x W_ir^T + b_ir + b_hr | x W_iz^T + b_iz + b_hz | b_hn]
    N (.., H)  = x W_in^T + b_in
    The r/z hidden biases can be folded in (they are only added); b_hn cannot,
    since r multiplies it.  The loop adds h W_hh^T to G.
    """
    lead = x.shape[:2]
    x2 = x.reshape(-1, x.size(2))
    if b_ih is not None:
        bias = b_ih.clone()
        bias[: 2 * H] += b_hh[: 2 * H]
        G = torch.addmm(bias, x2, w_ih.t()).view(*lead, 3 * H)
    else:
        G = torch.mm(x2, w_ih.t()).view(*lead, 3 * H)
    N = G[..., 2 * H :].clone()
    if b_hh is not None:
        G[..., 2 * H :] = b_hh[2 * H :]
    else:
        G[..., 2 * H :] = 0
    return G, N


def _py_fwd_loop(G, N, out, h0, w_hh, tdim):
    """Python forward loop, in place (call under inference_mode)."""
    H = w_hh.size(1)
    T = G.size(tdim)
    # Per-step views are made once (unbind is one call), not inside the loop.
    g_t = G.unbind(tdim)
    rz_t = G[..., : 2 * H].unbind(tdim)
    r_t = G[..., :H].unbind(tdim)
    z_t = G[..., H : 2 * H].unbind(tdim)
    hn_t = G[..., 2 * H :].unbind(tdim)
    n_t = N.unbind(tdim)
    o_t = out.unbind(tdim)
    wt = w_hh.t()
    h = h0
    for t in range(T):
        g_t[t].addmm_(h, wt)  # [pre_r, pre_z, W_hn h + b_hn]
        rz_t[t].sigmoid_()  # -> [r, z, W_hn h + b_hn]
        n_t[t].addcmul_(r_t[t], hn_t[t]).tanh_()  # n
        h = torch.lerp(n_t[t], h, z_t[t], out=o_t[t])  # n + z (h - n)


def _py_bptt(grad_out, grad_hT, G, N, out, h0, w_hh, tdim, need_h0):
    """Python backward-through-time loop (call under inference_mode).

    Returns DH (total dL/dh_t for every t), dG = dL/d[pre_r, pre_z, W_hn h + b_hn],
    dGi = dL/d[pre_r, pre_z, W_in x + b_in] and dh0 (or None).
    """
    H = w_hh.size(1)
    T = out.size(tdim)
    lead = out.shape[:2]
    r = G[..., :H]
    z = G[..., H : 2 * H]
    hn = G[..., 2 * H :]
    n = N
    hp = torch.cat([h0.unsqueeze(tdim), out.narrow(tdim, 0, T - 1)], tdim)

    # With dh = dL/dh_t (total), the step's gradients are elementwise-linear in dh:
    #   da   = dh * (1-z)(1-n^2)          (a = pre-tanh of n)   = dL/d(W_in x + b_in)
    #   dpr  = da * hn * r(1-r)                                  (r pre-activation)
    #   dpz  = dh * (h_{t-1} - n) * z(1-z)                       (z pre-activation)
    #   dhn  = da * r                                            = dL/d(W_hn h + b_hn)
    #   dh_{t-1} = dL/dout_{t-1} + dh * z + [dpr, dpz, dhn] @ W_hh
    # so the coefficients K = [K_r, K_z, K_hn] are computed for the whole window
    # and the loop is 3 calls per step.
    omz = 1 - z
    Ka = omz * (1 - n * n)
    K = out.new_empty(*lead, 3 * H)
    torch.mul(Ka * hn, r * (1 - r), out=K[..., :H])
    torch.mul(hp - n, z * omz, out=K[..., H : 2 * H])
    torch.mul(Ka, r, out=K[..., 2 * H :])

    if grad_out is None:
        grad_out = out.new_zeros(*lead, H)
    DH = out.new_empty(*lead, H)
    dG = out.new_empty(*lead, 3 * H)

    go_t = grad_out.unbind(tdim)
    dh_t = DH.unbind(tdim)
    dh1_t = DH.unsqueeze(-2).unbind(tdim)  # (B,1,H) views for broadcasting
    k3_t = K.view(*lead, 3, H).unbind(tdim)
    dg3_t = dG.view(*lead, 3, H).unbind(tdim)
    dg_t = dG.unbind(tdim)
    z_t = z.unbind(tdim)

    if grad_hT is not None:
        torch.add(go_t[T - 1], grad_hT, out=dh_t[T - 1])
    else:
        dh_t[T - 1].copy_(go_t[T - 1])
    dh0 = None
    for t in range(T - 1, -1, -1):
        torch.mul(k3_t[t], dh1_t[t], out=dg3_t[t])
        if t > 0:
            nxt = torch.addcmul(go_t[t - 1], dh_t[t], z_t[t], out=dh_t[t - 1])
        else:
            if not need_h0:
                break
            nxt = dh0 = dh_t[0] * z_t[0]
        nxt.addmm_(dg_t[t], w_hh)
    dGi = dG.clone()  # r/z parts are shared with the input side
    torch.mul(DH, Ka, out=dGi[..., 2 * H :])  # n part is da, not da * r
    return DH, dG, dGi, dh0


def _layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """One layer, no autograd, time-major: x (T,B,I) and h0 (B,H) contiguous -> (out (T,B,H), the
    gates _layer_backward needs).

    The loops run under inference_mode: that skips the autograd and view-tracking work on each of
    their many small calls (measured about 1.5x faster than no_grad). Tensors made there are
    inference tensors, so `out`, handed on, is copied out as an ordinary one.
    """
    H = w_hh.size(1)
    kernel = compiled_loops(build=False)
    with torch.inference_mode():
        G, N = _project(x, w_ih, b_ih, b_hh, H, 0)
        out = x.new_empty(x.size(0), x.size(1), H)
        if kernel is not None:
            kernel.gru_forward(G, N, out, h0, w_hh)
        else:
            _py_fwd_loop(G, N, out, h0, w_hh, 0)
    if not torch.is_inference_mode_enabled():
        out = out.clone()
    return out, (G, N)


def _layer_backward(grad_out, grad_hT, x, h0, w_ih, w_hh, out, saved, need):
    """Gradients of one (time-major) layer: (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)."""
    need_x, need_h0, need_wih, need_whh, need_bih, need_bhh = need
    H = w_hh.size(1)
    T, B, I = x.shape
    G, N = saved
    kernel = compiled_loops(build=False)
    with torch.inference_mode():
        if kernel is not None:
            grad_out = out.new_zeros(out.shape) if grad_out is None else grad_out.contiguous()
            dh_T = grad_out[-1] if grad_hT is None else grad_out[-1] + grad_hT
            dG, dGi, dh0 = kernel.gru_backward(grad_out, dh_T, G, N, out, h0, w_hh, need_h0)
        else:
            _, dG, dGi, dh0 = _py_bptt(grad_out, grad_hT, G, N, out, h0, w_hh, 0, need_h0)
    if dh0 is not None:
        dh0 = dh0.clone()  # ordinary tensor (it may end up in .grad)
    dbih = dGi.view(-1, 3 * H).sum(0) if need_bih else None
    dbhh = dG.view(-1, 3 * H).sum(0) if need_bhh else None
    # Everything below is made outside inference mode (ordinary tensors).
    dx = dwih = dwhh = None
    dgi2 = dGi.view(-1, 3 * H)
    if need_x:
        dx = torch.mm(dgi2, w_ih).view(T, B, I)
    if need_wih:
        dwih = torch.mm(dgi2.t(), x.view(-1, I))
    if need_whh:
        # sum_t dG_t^T h_{t-1}: h_{t-1} is h0 for t = 0 and out[t-1] after.
        dwhh = torch.addmm(
            torch.mm(dG[0].t(), h0), dG[1:].reshape(-1, 3 * H).t(), out[:-1].reshape(-1, H)
        )
    return dx, dh0, dwih, dwhh, dbih, dbhh


class _GRULayerFn(torch.autograd.Function):
    """One time-major layer: (x (T,B,I), h0 (B,H), weights) -> (out (T,B,H), h_T (B,H))."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        h0c = h0.contiguous()
        w_hhc = w_hh.contiguous()
        out, saved = _layer_forward(x, h0c, w_ih, w_hhc, b_ih, b_hh)
        ctx.save_for_backward(x, h0c, w_ih, w_hhc, out)
        ctx.gates = saved  # private, never modified: no version check needed
        # h_T as a copy: a Function output must not be a view of another output.
        return out, out[-1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, grad_hT):
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        need = tuple(ctx.needs_input_grad[:6])
        return _layer_backward(grad_out, grad_hT, x, h0, w_ih, w_hh, out, ctx.gates, need)


def fast_gru(
    inputs: Tensor,
    h0: Optional[Tensor],
    weights: Sequence[Weights],
    batch_first: bool = True,
) -> Tuple[Tensor, Tensor]:
    """GRU over `inputs` with nn.GRU's semantics (unidirectional, no dropout).

    inputs: (B,T,I) if batch_first else (T,B,I), float32/float64 CPU.
    h0: None (zeros) or (num_layers, B, H).
    weights: per layer (weight_ih, weight_hh, bias_ih, bias_hh) in nn.GRU's
        layout and gate order (r, z, n); biases may be None (bias=False).
    Returns (output, h_n) like nn.GRU: output (B,T,H) / (T,B,H), h_n (L,B,H).
    As with nn.GRU, a batch_first output is a transposed view of a time-major
    buffer (not contiguous).
    """
    if inputs.size(1 if batch_first else 0) == 0:
        raise ValueError("fast_gru: empty sequence")
    # Work time-major: each step's (B, .) block is then contiguous, which the
    # loops and the per-step gemm like (measured ~1.3x faster than strided
    # batch-first steps at batch 64).  Like torch's own CPU RNNs, transpose
    # once on entry (a copy of the input) and return a transposed view.
    x = (inputs.transpose(0, 1) if batch_first else inputs).contiguous()
    B = x.size(1)
    H = weights[0][1].size(1)
    track = torch.is_grad_enabled() and (
        inputs.requires_grad
        or (h0 is not None and h0.requires_grad)
        or any(w is not None and w.requires_grad for lw in weights for w in lw)
    )
    hs: List[Tensor] = []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        hl = x.new_zeros(B, H) if h0 is None else h0[layer]
        if track:
            x, hT = _GRULayerFn.apply(x, hl, w_ih, w_hh, b_ih, b_hh)
        else:
            with torch.no_grad():
                x, _ = _layer_forward(x, hl.contiguous(), w_ih, w_hh.contiguous(), b_ih, b_hh)
            hT = x[-1]
        hs.append(hT)
    out = x.transpose(0, 1) if batch_first else x
    return out, torch.stack(hs, 0)


def module_weights(gru: nn.GRU) -> List[Weights]:
    """nn.GRU's parameters as fast_gru's `weights` list (no copies)."""
    ws: List[Weights] = []
    for k in range(gru.num_layers):
        ws.append(
            (
                getattr(gru, f"weight_ih_l{k}"),
                getattr(gru, f"weight_hh_l{k}"),
                getattr(gru, f"bias_ih_l{k}", None) if gru.bias else None,
                getattr(gru, f"bias_hh_l{k}", None) if gru.bias else None,
            )
        )
    return ws


def fast_gru_applicable(gru: nn.GRU, inputs, h0=None) -> bool:
    """True when fast_gru reproduces gru(inputs, h0) and is worth using.

    * CPU tensors only: on CUDA nn.GRU uses cuDNN, which is faster.
    * float32/float64 only: the speed-up is measured for float32; float64 is
      exact too (the tests use it); bf16/fp16 would round differently.
    * a plain 3-D tensor (no PackedSequence, no unbatched 2-D input).
    * unidirectional, no inter-layer dropout in training mode, no proj_size
      (nn.GRU has none) -- these are not implemented.
    * parameters must be plain tensors on the same device/dtype as inputs.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() != 3:
        return False
    if inputs.device.type != "cpu" or inputs.dtype not in (torch.float32, torch.float64):
        return False
    if inputs.size(1 if gru.batch_first else 0) == 0:
        return False
    if gru.bidirectional or (gru.dropout > 0 and gru.training and gru.num_layers > 1):
        return False
    if getattr(gru, "proj_size", 0):
        return False
    for p in gru.parameters():
        if p.device != inputs.device or p.dtype != inputs.dtype or p.layout != torch.strided:
            return False
    if h0 is not None:
        if not isinstance(h0, Tensor) or h0.dim() != 3:
            return False
        if h0.device != inputs.device or h0.dtype != inputs.dtype:
            return False
    return True


def gru_forward(gru: nn.GRU, inputs, h0=None):
    """Drop-in for `gru(inputs, h0)`: fast path when applicable, else nn.GRU."""
    if fast_gru_applicable(gru, inputs, h0):
        return fast_gru(inputs, h0, module_weights(gru), batch_first=gru.batch_first)
    return nn.GRU.forward(gru, inputs, h0)


# ---- the tanh RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)


class _TanhLayerFn(torch.autograd.Function):
    """One time-major tanh layer: (x (T,B,I), h0 (B,H), weights) -> (out (T,B,H), h_T (B,H)).

    The same plan as the GRU's: the input projections (both biases folded in) in one matmul, a
    loop of two in-place calls a step each way, the weight gradients as single matmuls after it.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        h0, w_hh = h0.contiguous(), w_hh.contiguous()
        out = _tanh_forward(x, h0, w_ih, w_hh, b_ih, b_hh)
        ctx.save_for_backward(x, h0, w_ih, w_hh, out)
        ctx.has_bias = b_ih is not None
        return out, out[-1].clone()  # an output must not be a view of another

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, grad_hT):
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        T, B, I = x.shape
        H = w_hh.size(1)
        kernel = compiled_loops(build=False)
        with torch.inference_mode():
            grad = (grad_out if grad_out is not None else out.new_zeros(T, B, H)).clone(memory_format=torch.contiguous_format)
            if grad_hT is not None:
                grad[-1].add_(grad_hT)
            # dL/d(pre-activation) a_t = (dL/dout_t + a_{t+1} W_hh) * (1 - h_t^2), from the last step back
            if kernel is not None:
                kernel.tanh_backward(grad, out, w_hh)
            else:
                slope = torch.mul(out, out).neg_().add_(1)
                steps = grad.unbind(0)
                slopes = slope.unbind(0)
                steps[-1].mul_(slopes[-1])
                for t in range(T - 1, 0, -1):
                    steps[t - 1].addmm_(steps[t], w_hh).mul_(slopes[t - 1])
            grad_h0 = torch.mm(grad[0], w_hh) if ctx.needs_input_grad[1] else None
        grad = grad.clone(memory_format=torch.contiguous_format)  # ordinary tensors from here on: they may end up in .grad
        flat = grad.view(-1, H)
        grad_x = torch.mm(flat, w_ih).view(T, B, I) if ctx.needs_input_grad[0] else None
        grad_w_ih = torch.mm(flat.t(), x.reshape(-1, I)) if ctx.needs_input_grad[2] else None
        grad_w_hh = (torch.addmm(torch.mm(grad[0].t(), h0), grad[1:].reshape(-1, H).t(), out[:-1].reshape(-1, H))
                     if ctx.needs_input_grad[3] else None)
        grad_bias = flat.sum(0) if ctx.has_bias else None
        return (grad_x, None if grad_h0 is None else grad_h0.clone(), grad_w_ih, grad_w_hh,
                grad_bias, None if grad_bias is None else grad_bias.clone())  # two tensors: clipping scales each in place


def _tanh_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """The layer's outputs (T,B,H), no autograd (inference_mode: see _layer_forward)."""
    H = w_hh.size(1)
    kernel = compiled_loops(build=False)
    with torch.inference_mode():
        flat = x.reshape(-1, x.size(2))
        out = (torch.addmm(b_ih + b_hh, flat, w_ih.t()) if b_ih is not None
               else torch.mm(flat, w_ih.t())).view(x.size(0), x.size(1), H)
        if kernel is not None:
            kernel.tanh_forward(out, h0, w_hh)
        else:
            steps, recurrent, h = out.unbind(0), w_hh.t(), h0
            for t in range(x.size(0)):
                h = steps[t].addmm_(h, recurrent).tanh_()
    return out.clone() if not torch.is_inference_mode_enabled() else out


def tanh_forward(rnn: nn.RNN, inputs, h0=None):
    """Drop-in for `rnn(inputs, h0)` of a tanh nn.RNN: the loops above where they reproduce it
    (as fast_gru_applicable says, and a tanh nonlinearity), else nn.RNN itself."""
    if rnn.nonlinearity != "tanh" or not fast_gru_applicable(rnn, inputs, h0):
        return nn.RNN.forward(rnn, inputs, h0)
    x = (inputs.transpose(0, 1) if rnn.batch_first else inputs).contiguous()
    H, B = rnn.hidden_size, x.size(1)
    track = torch.is_grad_enabled() and (inputs.requires_grad or (h0 is not None and h0.requires_grad)
                                         or any(p.requires_grad for p in rnn.parameters()))
    finals = []
    for layer, weights in enumerate(module_weights(rnn)):
        start = x.new_zeros(B, H) if h0 is None else h0[layer]
        if track:
            x, final = _TanhLayerFn.apply(x, start, *weights)
        else:
            with torch.no_grad():
                x = _tanh_forward(x, start.contiguous(), weights[0], weights[1].contiguous(), *weights[2:])
            final = x[-1]
        finals.append(final)
    return (x.transpose(0, 1) if rnn.batch_first else x), torch.stack(finals, 0)
