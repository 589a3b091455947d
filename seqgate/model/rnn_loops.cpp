// The time loops of seqgate's CPU GRU and tanh RNN (seqgate/model/fast_rnn.py), compiled.
//
// fast_rnn.py's Python loops make five ATen calls a GRU forward step and three a backward step (two
// and two for the tanh RNN); at seqgate's sizes (batch 16, 30-100 hidden units) each call's fixed
// cost is most of the work, and torch's elementwise tanh is not vectorised on every build (measured
// 2.6 ns an element against sigmoid's 0.4 ns). Here a step is one addmm_ and one fused loop over
// the batch's units.
//
// The exponential is a Cody-Waite range reduction and a degree-6 polynomial (the Cephes expf
// coefficients, about 1 ulp), written so that the compiler vectorises the loops (omp simd, with
// -fno-trapping-math for the clamps) without -ffast-math, whose assumptions (no NaN, no infinity)
// a diverging run would break. float64 uses std::exp.
//
// The GRU's layout and in-place conventions are the Python loops' (see fast_rnn.py):
//   G (T,B,3H): on entry [x W_ir + b_ir + b_hr | x W_iz + b_iz + b_hz | b_hn], on exit [r | z | W_hn h + b_hn]
//   N (T,B,H):  on entry x W_in + b_in, on exit n
//   out (T,B,H): h_1 .. h_T
// The tanh RNN's: out (T,B,H) holds x W_ih + b_ih + b_hh on entry and h_1 .. h_T on exit.

// Only the headers the loops use: torch/extension.h (all of libtorch's C++ API) took about 49 s
// to compile here, these about 22 s, and a user's first `seqgate train` waits for the build.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/utils/pybind.h>  // pybind11 with torch's Tensor conversions

#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

inline float exp_vec(float x) {
  // Clamped so that the exponent bits stay in range; exp(-87.3) is 1e-38 and exp(88.3) 2e38,
  // so the sigmoid and tanh built on it saturate exactly as they should.
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float shifted = x * 1.44269504088896341f + magic;
  float n = shifted - magic;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  int32_t k = bits - 0x4B400000;  // n as an integer
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t scale_bits = (k + 127) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

inline double exp_vec(double x) { return std::exp(x); }

template <typename scalar_t>
inline scalar_t sigmoid(scalar_t x) {
  return scalar_t(1) / (scalar_t(1) + exp_vec(-x));
}

template <typename scalar_t>
inline scalar_t tanh_(scalar_t x) {
  return scalar_t(1) - scalar_t(2) / (scalar_t(1) + exp_vec(scalar_t(2) * x));
}

template <typename scalar_t>
void gru_forward_loop(at::Tensor& G, at::Tensor& N, at::Tensor& out, const at::Tensor& h0,
                  const at::Tensor& w_hh_t) {
  const int64_t T = G.size(0), B = G.size(1), H = N.size(2);
  scalar_t* g_base = G.data_ptr<scalar_t>();
  scalar_t* n_base = N.data_ptr<scalar_t>();
  scalar_t* o_base = out.data_ptr<scalar_t>();
  at::Tensor h = h0;
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor g = G.select(0, t);
    g.addmm_(h, w_hh_t);  // [pre_r, pre_z, W_hn h + b_hn]
    const scalar_t* hp = h.data_ptr<scalar_t>();
    scalar_t* gp = g_base + t * B * 3 * H;
    scalar_t* np = n_base + t * B * H;
    scalar_t* op = o_base + t * B * H;
    for (int64_t b = 0; b < B; ++b) {
      scalar_t* gr = gp + b * 3 * H;
      scalar_t* gz = gr + H;
      const scalar_t* gn = gr + 2 * H;
      scalar_t* nb = np + b * H;
      const scalar_t* hb = hp + b * H;
      scalar_t* ob = op + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        scalar_t r = sigmoid(gr[j]);
        scalar_t z = sigmoid(gz[j]);
        scalar_t n = tanh_(nb[j] + r * gn[j]);
        gr[j] = r;
        gz[j] = z;
        nb[j] = n;
        ob[j] = n + z * (hb[j] - n);
      }
    }
    h = out.select(0, t);
  }
}

// Backward through time. A GRU step is linear in dh = dL/dh_t once the forward is known:
//   da  = dh (1-z)(1-n^2)      dpr = da hn r(1-r)      dpz = dh (h_{t-1} - n) z(1-z)
//   dhn = da r                 dh_{t-1} = dL/dout_{t-1} + dh z + [dpr, dpz, dhn] W_hh
// dG gets [dpr, dpz, dhn] (the recurrent side), dGi [dpr, dpz, da] (the input side).
template <typename scalar_t>
void gru_backward_loop(const at::Tensor& grad_out, const at::Tensor& G, const at::Tensor& N,
                   const at::Tensor& out, const at::Tensor& h0, const at::Tensor& w_hh,
                   at::Tensor& dh, at::Tensor& dG, at::Tensor& dGi, bool need_h0, at::Tensor& dh0) {
  const int64_t T = G.size(0), B = G.size(1), H = N.size(2);
  const scalar_t* go_base = grad_out.data_ptr<scalar_t>();
  const scalar_t* g_base = G.data_ptr<scalar_t>();
  const scalar_t* n_base = N.data_ptr<scalar_t>();
  const scalar_t* o_base = out.data_ptr<scalar_t>();
  const scalar_t* h0p = h0.data_ptr<scalar_t>();
  scalar_t* dg_base = dG.data_ptr<scalar_t>();
  scalar_t* dgi_base = dGi.data_ptr<scalar_t>();
  at::Tensor next = at::empty_like(dh);
  const at::Tensor no_gradient = at::zeros_like(dh);  // dL/dh_0 has no output term
  for (int64_t t = T - 1; t >= 0; --t) {
    const bool last = t == 0;
    const scalar_t* dhp = dh.data_ptr<scalar_t>();
    scalar_t* nxp = next.data_ptr<scalar_t>();
    const scalar_t* hprev = last ? h0p : o_base + (t - 1) * B * H;
    const scalar_t* gop = last ? no_gradient.data_ptr<scalar_t>() : go_base + (t - 1) * B * H;
    for (int64_t b = 0; b < B; ++b) {
      const scalar_t* gb = g_base + (t * B + b) * 3 * H;
      const scalar_t* nb = n_base + (t * B + b) * H;
      const scalar_t* hpb = hprev + b * H;
      const scalar_t* dhb = dhp + b * H;
      scalar_t* dgb = dg_base + (t * B + b) * 3 * H;
      scalar_t* dgib = dgi_base + (t * B + b) * 3 * H;
      scalar_t* nxb = nxp + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        scalar_t r = gb[j], z = gb[H + j], hn = gb[2 * H + j], n = nb[j], d = dhb[j];
        scalar_t da = d * (scalar_t(1) - z) * (scalar_t(1) - n * n);
        scalar_t dpr = da * hn * r * (scalar_t(1) - r);
        scalar_t dpz = d * (hpb[j] - n) * z * (scalar_t(1) - z);
        dgb[j] = dpr;
        dgb[H + j] = dpz;
        dgb[2 * H + j] = da * r;
        dgib[j] = dpr;
        dgib[H + j] = dpz;
        dgib[2 * H + j] = da;
        nxb[j] = gop[b * H + j] + d * z;
      }
    }
    if (last && !need_h0) break;
    next.addmm_(dG.select(0, t), w_hh);
    std::swap(dh, next);
  }
  if (need_h0) dh0 = dh;
}

template <typename scalar_t>
void tanh_forward_loop(at::Tensor& out, const at::Tensor& h0, const at::Tensor& w_hh_t) {
  const int64_t T = out.size(0), BH = out.size(1) * out.size(2);
  scalar_t* o_base = out.data_ptr<scalar_t>();
  at::Tensor h = h0;
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor step = out.select(0, t);
    step.addmm_(h, w_hh_t);
    scalar_t* op = o_base + t * BH;
#pragma omp simd
    for (int64_t j = 0; j < BH; ++j) op[j] = tanh_(op[j]);
    h = step;
  }
}

// dL/da_t = (dL/dout_t + dL/da_{t+1} W_hh) (1 - h_t^2), from the last step back, in place over grad.
template <typename scalar_t>
void tanh_backward_loop(at::Tensor& grad, const at::Tensor& out, const at::Tensor& w_hh) {
  const int64_t T = out.size(0), BH = out.size(1) * out.size(2);
  scalar_t* g_base = grad.data_ptr<scalar_t>();
  const scalar_t* o_base = out.data_ptr<scalar_t>();
  for (int64_t t = T - 1; t >= 0; --t) {
    if (t < T - 1) grad.select(0, t).addmm_(grad.select(0, t + 1), w_hh);
    scalar_t* gp = g_base + t * BH;
    const scalar_t* op = o_base + t * BH;
#pragma omp simd
    for (int64_t j = 0; j < BH; ++j) gp[j] *= scalar_t(1) - op[j] * op[j];
  }
}

}  // namespace

void gru_forward(at::Tensor G, at::Tensor N, at::Tensor out, at::Tensor h0, at::Tensor w_hh) {
  TORCH_CHECK(G.is_contiguous() && N.is_contiguous() && out.is_contiguous() && h0.is_contiguous(),
              "gru kernel: contiguous tensors expected");
  at::Tensor w_hh_t = w_hh.t();
  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "seqgate_gru_forward",
                             [&] { gru_forward_loop<scalar_t>(G, N, out, h0, w_hh_t); });
}

// Returns (dG, dGi, dh0 or an undefined tensor). grad_out (T,B,H) is the gradient arriving at every
// output, dh_T (B,H) the total at the last step (grad_out[T-1] plus the final state's).
std::vector<at::Tensor> gru_backward(at::Tensor grad_out, at::Tensor dh_T, at::Tensor G, at::Tensor N,
                                 at::Tensor out, at::Tensor h0, at::Tensor w_hh, bool need_h0) {
  TORCH_CHECK(grad_out.is_contiguous() && G.is_contiguous() && N.is_contiguous() &&
                  out.is_contiguous() && h0.is_contiguous() && w_hh.is_contiguous(),
              "gru kernel: contiguous tensors expected");
  at::Tensor dG = at::empty_like(G);
  at::Tensor dGi = at::empty_like(G);
  at::Tensor dh = dh_T.clone();
  at::Tensor dh0;
  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "seqgate_gru_backward", [&] {
    gru_backward_loop<scalar_t>(grad_out, G, N, out, h0, w_hh, dh, dG, dGi, need_h0, dh0);
  });
  return {dG, dGi, need_h0 ? dh0 : at::Tensor()};
}

void tanh_forward(at::Tensor out, at::Tensor h0, at::Tensor w_hh) {
  TORCH_CHECK(out.is_contiguous() && h0.is_contiguous(), "tanh kernel: contiguous tensors expected");
  at::Tensor w_hh_t = w_hh.t();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "seqgate_tanh_forward",
                             [&] { tanh_forward_loop<scalar_t>(out, h0, w_hh_t); });
}

// grad (T,B,H): dL/dout_t on entry (the final state's gradient added at T-1), dL/da_t on exit.
void tanh_backward(at::Tensor grad, at::Tensor out, at::Tensor w_hh) {
  TORCH_CHECK(grad.is_contiguous() && out.is_contiguous() && w_hh.is_contiguous(),
              "tanh kernel: contiguous tensors expected");
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "seqgate_tanh_backward",
                             [&] { tanh_backward_loop<scalar_t>(grad, out, w_hh); });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_forward", &gru_forward, "GRU forward loop, in place");
  m.def("gru_backward", &gru_backward, "GRU backward through time");
  m.def("tanh_forward", &tanh_forward, "tanh RNN forward loop, in place");
  m.def("tanh_backward", &tanh_backward, "tanh RNN backward through time, in place");
}
