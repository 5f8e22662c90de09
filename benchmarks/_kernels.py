"""The whole training update of a vanilla RNN with the loss at the last step, written three ways for
benchmarks/compiled.py: a torch function over a member axis (run eagerly or through torch.compile), a numba
kernel and a C++ kernel (torch.utils.cpp_extension.load_inline), the last two plain loops over float32 arrays
with a loop over the members inside.

Every one computes what rnngrad.run.Run.train_step computes for such a run: h_t = f(W h_{t-1} + U x_t + b),
h_0 = 0; y = V h_T + c; cross-entropy (classes) or squared error (one output) averaged over the batch; the explicit
BPTT of rnngrad.models.rnn.Recurrence (delta_T = dL/dh_T f'(a_T), delta_t = (W^T delta_{t+1}) f'(a_t)); grad_W =
sum_t delta_t h_{t-1}^T, grad_U = sum_t delta_t x_t^T, grad_b = sum_t delta_t; Pascanu et al.'s Omega and
alpha dOmega/dW (eq. 10, squared norms) as rnngrad.regularizer.omega computes them, from the same deltas
(W^T delta_{k+1} is the recursion's own carry, so no second recursion runs); the gradient norm over W, U, b, V,
c; clipping by norm (g <- clip g / ||g|| where ||g|| > clip); then SGD (p <- p - lr g)
or Adam with rnngrad.optim's rules.
Scalars per update: lr (SGD), or step_size = lr / (1 - beta1^t) and correction = sqrt(1 - beta2^t) (Adam), given by
the caller so that no kernel depends on the step count.
"""

from __future__ import annotations

import math

import torch

BOUND = 1e-20  # rnngrad.regularizer.BOUND
BETA1, BETA2 = 0.9, 0.999  # rnngrad.optim.ADAM_BETAS
EPS = 1e-8  # rnngrad.optim.EPS["adam"]


def torch_update(params, moments, x, y, *, ce: bool, relu: bool, alpha: float, clip: float, adam: bool,
                 lr: float, step_size, correction):  # fmt: skip
    """One update of K stacked runs: params (W [K,H,H], U [K,H,D], b [K,H], V [K,O,H], c [K,O]), moments (Adam's
    first and second moments, 10 tensors, or ()), x [K,T,B,D], y [K,B] (class ids as floats, or targets).
    Returns (new params, new moments, [K, 3] loss, gradient norm, Omega). Functional (nothing in place), so that
    torch.compile traces it as one graph."""
    W, U, b, V, c = params  # noqa: N806 - the lecture's names
    K, T, B, D = x.shape  # noqa: N806
    H = W.shape[1]  # noqa: N806
    f = torch.relu if relu else torch.tanh

    def slope(h):
        return (h > 0).to(h.dtype) if relu else 1.0 - h * h

    drive = torch.baddbmm(b[:, None], x.reshape(K, T * B, D), U.transpose(1, 2)).view(K, T, B, H)
    w_t = W.transpose(1, 2)
    h = f(drive[:, 0])
    states = [h]
    for t in range(1, T):
        h = f(torch.baddbmm(drive[:, t], h, w_t))
        states.append(h)
    out = torch.baddbmm(c[:, None], h, V.transpose(1, 2))  # [K, B, O]
    if ce:
        labels = y.long()
        logp = torch.log_softmax(out, -1)
        loss = -logp.gather(-1, labels[..., None])[..., 0].mean(-1)
        g = (logp.exp() - torch.nn.functional.one_hot(labels, out.shape[-1]).to(out.dtype)) / B
    else:
        err = out[..., 0] - y
        loss = err.square().mean(-1)
        g = (2.0 / B) * err[..., None]
    grad_V = torch.bmm(g.transpose(1, 2), h)  # noqa: N806
    grad_c = g.sum(1)
    delta = torch.bmm(g, V) * slope(h)
    deltas, carries = [delta], []
    for t in range(T - 1, 0, -1):
        carry = torch.bmm(delta, W)  # rows: (W^T delta_{t+1})^T
        delta = carry * slope(states[t - 1])
        carries.append(carry)
        deltas.append(delta)
    deltas.reverse()
    carries.reverse()
    hs = torch.stack(states, 1)  # [K, T, B, H]
    ds = torch.stack(deltas, 1)
    grad_W = torch.bmm(ds[:, 1:].reshape(K, -1, H).transpose(1, 2), hs[:, :-1].reshape(K, -1, H))  # noqa: N806
    grad_U = torch.bmm(ds.reshape(K, -1, H).transpose(1, 2), x.reshape(K, -1, D))  # noqa: N806
    grad_b = ds.sum((1, 2))
    omega = loss.new_zeros(K)
    if alpha and T > 1:
        slopes = slope(hs[:, :-1])
        upstream = ds[:, 1:]
        back = torch.stack(carries, 1) * slopes
        up_sq = upstream.square().sum(-1)
        kept = up_sq >= BOUND
        n_kept = kept.sum((1, 2)).to(x.dtype).clamp(min=1.0)[:, None, None]  # no kept step: excess 0, so 0
        up_sq = torch.where(kept, up_sq, 1.0)
        excess = torch.where(kept, back.square().sum(-1) / up_sq - 1.0, 0.0)  # eq. 10: squared norms
        omega = (excess.square() / n_kept).sum((1, 2))
        coef = 4.0 * excess / (up_sq * n_kept)
        grad_omega = torch.bmm((upstream * coef[..., None]).reshape(K, -1, H).transpose(1, 2),
                               (back * slopes).reshape(K, -1, H))  # fmt: skip
        grad_W = grad_W + alpha * grad_omega  # noqa: N806
    grads = [grad_W, grad_U, grad_b, grad_V, grad_c]
    norm = torch.stack([g.square().flatten(1).sum(1) for g in grads], 1).sum(1).sqrt()
    factor = torch.where(norm > clip, clip / norm, 1.0)
    grads = [g * factor.view(-1, *[1] * (g.dim() - 1)) for g in grads]
    if not adam:
        new = [p - lr * g for p, g in zip(params, grads, strict=True)]
        return new, moments, torch.stack([loss, norm, omega], 1)
    firsts, seconds = moments[:5], moments[5:]
    firsts = [m + (1 - BETA1) * (g - m) for m, g in zip(firsts, grads, strict=True)]
    seconds = [v * BETA2 + (1 - BETA2) * g * g for v, g in zip(seconds, grads, strict=True)]
    new = [p - step_size * m / (v.sqrt() / correction + EPS) for p, m, v in zip(params, firsts, seconds, strict=True)]
    return new, [*firsts, *seconds], torch.stack([loss, norm, omega], 1)


def loop_update(W, U, b, V, c, m_W, m_U, m_b, m_V, m_c, v_W, v_U, v_b, v_V, v_c, x, y, out,  # noqa: N803, PLR0913
                ce, relu, alpha, clip, adam, lr, step_size, correction):  # fmt: skip
    """The same update as plain loops over float32 arrays, in place, K members one after another (numba compiles
    this; the C++ kernel below is the same text in C++). out [K, 3] float64: loss, gradient norm, Omega."""
    K, T, B, D = x.shape  # noqa: N806
    H = W.shape[1]  # noqa: N806
    O = V.shape[1]  # noqa: N806, E741
    f32 = np.float32
    hs = np.empty((T, B, H), f32)
    deltas = np.empty((T, B, H), f32)
    carries = np.empty((T, B, H), f32)
    w_t = np.empty((H, H), f32)
    u_t = np.empty((D, H), f32)
    g_W = np.empty((H, H), f32)  # noqa: N806
    g_Ut = np.empty((D, H), f32)  # noqa: N806
    g_U = np.empty((H, D), f32)  # noqa: N806
    g_b = np.empty(H, f32)
    g_V = np.empty((O, H), f32)  # noqa: N806
    g_c = np.empty(O, f32)
    g_O = np.empty((H, H), f32)  # noqa: N806
    g = np.empty((B, O), f32)
    logits = np.empty(O, f32)
    up_sq = np.empty((T, B), f32)
    back_norm = np.empty((T, B), f32)
    nvec = np.empty(H, f32)
    for k in range(K):
        for i in range(H):
            for j in range(H):
                w_t[j, i] = W[k, i, j]
            for d in range(D):
                u_t[d, i] = U[k, i, d]
        for t in range(T):  # a_t = W h_{t-1} + U x_t + b, h_t = f(a_t)
            for bb in range(B):
                a = hs[t, bb]
                for i in range(H):
                    a[i] = b[k, i]
                for d in range(D):
                    xv = x[k, t, bb, d]
                    for i in range(H):
                        a[i] += xv * u_t[d, i]
                if t > 0:
                    hp = hs[t - 1, bb]
                    for j in range(H):
                        hj = hp[j]
                        for i in range(H):
                            a[i] += hj * w_t[j, i]
                for i in range(H):
                    a[i] = max(a[i], np.float32(0.0)) if relu else np.tanh(a[i])
        loss = 0.0
        for bb in range(B):  # readout, loss and dL/dy
            h_T = hs[T - 1, bb]  # noqa: N806
            for o in range(O):
                s = c[k, o]
                for i in range(H):
                    s += V[k, o, i] * h_T[i]
                logits[o] = s
            if ce:
                label = int(y[k, bb])
                top = logits.max()
                total = 0.0
                for o in range(O):
                    total += math.exp(logits[o] - top)
                loss += math.log(total) + top - logits[label]
                for o in range(O):
                    g[bb, o] = (math.exp(logits[o] - top) / total - (1.0 if o == label else 0.0)) / B
            else:
                err = logits[0] - y[k, bb]
                loss += err * err
                g[bb, 0] = 2.0 * err / B
        loss /= B
        g_V[:] = 0.0
        g_c[:] = 0.0
        for bb in range(B):
            h_T = hs[T - 1, bb]  # noqa: N806
            d_T = deltas[T - 1, bb]  # noqa: N806
            d_T[:] = 0.0
            for o in range(O):
                go = g[bb, o]
                g_c[o] += go
                for i in range(H):
                    g_V[o, i] += go * h_T[i]
                    d_T[i] += go * V[k, o, i]
            for i in range(H):
                d_T[i] *= np.float32(1.0 if h_T[i] > 0 else 0.0) if relu else np.float32(1.0) - h_T[i] * h_T[i]
        for t in range(T - 1, 0, -1):  # carry_{t-1} = W^T delta_t, delta_{t-1} = carry_{t-1} f'(a_{t-1})
            for bb in range(B):
                dt = deltas[t, bb]
                cr = carries[t - 1, bb]
                cr[:] = 0.0
                for i in range(H):
                    di = dt[i]
                    for j in range(H):
                        cr[j] += di * W[k, i, j]
                hp = hs[t - 1, bb]
                dp = deltas[t - 1, bb]
                for j in range(H):
                    dp[j] = cr[j] * (np.float32(1.0 if hp[j] > 0 else 0.0) if relu else np.float32(1.0) - hp[j] * hp[j])
        g_W[:] = 0.0
        g_Ut[:] = 0.0
        g_b[:] = 0.0
        for t in range(T):
            for bb in range(B):
                dt = deltas[t, bb]
                if t > 0:
                    hp = hs[t - 1, bb]
                    for i in range(H):
                        di = dt[i]
                        for j in range(H):
                            g_W[i, j] += di * hp[j]
                for d in range(D):
                    xv = x[k, t, bb, d]
                    for i in range(H):
                        g_Ut[d, i] += xv * dt[i]
                for i in range(H):
                    g_b[i] += dt[i]
        for i in range(H):
            for d in range(D):
                g_U[i, d] = g_Ut[d, i]
        omega = 0.0
        if alpha != 0.0 and T > 1:  # Omega over (k, b), k = 1..T-1: upstream delta_{k+1}, back carry_k f'(a_k)
            n_kept = 0
            for kk in range(T - 1):
                for bb in range(B):
                    up = deltas[kk + 1, bb]
                    cr = carries[kk, bb]
                    hk = hs[kk, bb]
                    us = np.float32(0.0)
                    bs = np.float32(0.0)
                    for i in range(H):
                        us += up[i] * up[i]
                        s = np.float32(1.0 if hk[i] > 0 else 0.0) if relu else np.float32(1.0) - hk[i] * hk[i]
                        bv = cr[i] * s
                        bs += bv * bv
                    up_sq[kk, bb] = us
                    back_norm[kk, bb] = math.sqrt(bs)
                    if us >= BOUND:
                        n_kept += 1
            if n_kept > 0:
                g_O[:] = 0.0
                for kk in range(T - 1):
                    for bb in range(B):
                        us = up_sq[kk, bb]
                        if us < BOUND:
                            continue
                        bn = back_norm[kk, bb]
                        excess = bn * bn / us - 1.0  # eq. 10: squared norms
                        omega += excess * excess
                        coef = 4.0 * excess / (us * n_kept)
                        up = deltas[kk + 1, bb]
                        cr = carries[kk, bb]
                        hk = hs[kk, bb]
                        for j in range(H):
                            s = np.float32(1.0 if hk[j] > 0 else 0.0) if relu else np.float32(1.0) - hk[j] * hk[j]
                            nvec[j] = cr[j] * s * s
                        for i in range(H):
                            ci = np.float32(coef * up[i])
                            for j in range(H):
                                g_O[i, j] += ci * nvec[j]
                omega /= n_kept
                for i in range(H):
                    for j in range(H):
                        g_W[i, j] += alpha * g_O[i, j]
        sq = 0.0
        for i in range(H):
            for j in range(H):
                sq += float(g_W[i, j]) ** 2
            for d in range(D):
                sq += float(g_U[i, d]) ** 2
            sq += float(g_b[i]) ** 2
        for o in range(O):
            for i in range(H):
                sq += float(g_V[o, i]) ** 2
            sq += float(g_c[o]) ** 2
        norm = math.sqrt(sq)
        factor = np.float32(clip / norm if norm > clip else 1.0)
        _apply(W[k], g_W, m_W[k], v_W[k], factor, adam, lr, step_size, correction)
        _apply(U[k], g_U, m_U[k], v_U[k], factor, adam, lr, step_size, correction)
        _apply(b[k], g_b, m_b[k], v_b[k], factor, adam, lr, step_size, correction)
        _apply(V[k], g_V, m_V[k], v_V[k], factor, adam, lr, step_size, correction)
        _apply(c[k], g_c, m_c[k], v_c[k], factor, adam, lr, step_size, correction)
        out[k, 0] = loss
        out[k, 1] = norm
        out[k, 2] = omega


def _apply(p, g, m, v, factor, adam, lr, step_size, correction):
    """Clip (factor) and step one parameter, flattened, in place."""
    pf, gf, mf, vf = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    b1, b2, eps = np.float32(BETA1), np.float32(BETA2), np.float32(EPS)
    flr, fss, fcor = np.float32(lr), np.float32(step_size), np.float32(correction)
    for i in range(pf.size):
        gi = gf[i] * factor
        if adam:
            mf[i] += (np.float32(1.0) - b1) * (gi - mf[i])
            vf[i] = vf[i] * b2 + (np.float32(1.0) - b2) * gi * gi
            pf[i] -= fss * mf[i] / (np.sqrt(vf[i]) / fcor + eps)
        else:
            pf[i] -= flr * gi


CPP = r"""
#include <torch/extension.h>
#include <cmath>
#include <vector>

static inline float act(float a, bool relu) { return relu ? (a > 0.f ? a : 0.f) : std::tanh(a); }
static inline float slope(float h, bool relu) { return relu ? (h > 0.f ? 1.f : 0.f) : 1.f - h * h; }

static void apply(float* __restrict p, float* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                  float factor, bool adam, double lr, double step_size, double correction) {
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  const float flr = lr, fss = step_size, fcor = correction;
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i] * factor;
    if (adam) {
      m[i] += (1.f - b1) * (gi - m[i]);
      v[i] = v[i] * b2 + (1.f - b2) * gi * gi;
      p[i] -= fss * m[i] / (std::sqrt(v[i]) / fcor + eps);
    } else {
      p[i] -= flr * gi;
    }
  }
}

// The update of benchmarks/_kernels.py loop_update, line for line; tensors: float32, contiguous.
torch::Tensor group_update(std::vector<torch::Tensor> params, std::vector<torch::Tensor> firsts,
                           std::vector<torch::Tensor> seconds, torch::Tensor x, torch::Tensor y, bool ce, bool relu,
                           double alpha, double clip, bool adam, double lr, double step_size, double correction) {
  const int64_t K = x.size(0), T = x.size(1), B = x.size(2), D = x.size(3);
  const int64_t H = params[0].size(1), O = params[3].size(1);
  float* Wp = params[0].data_ptr<float>(); float* Up = params[1].data_ptr<float>();
  float* bp = params[2].data_ptr<float>(); float* Vp = params[3].data_ptr<float>();
  float* cp = params[4].data_ptr<float>();
  const float* xp = x.data_ptr<float>(); const float* yp = y.data_ptr<float>();
  auto out = torch::zeros({K, 3}, torch::kFloat64);
  double* outp = out.data_ptr<double>();
  std::vector<float> hs(T * B * H), deltas(T * B * H), carries(T * B * H), wt(H * H), ut(D * H), gW(H * H),
      gUt(D * H), gU(H * D), gb(H), gV(O * H), gc(O), gO(H * H), g(B * O), logits(O), upsq(T * B), bnorm(T * B),
      nvec(H);
  std::vector<float> zeros_(H * H + H * D + H + O * H + O);
  for (int64_t k = 0; k < K; ++k) {
    float* W = Wp + k * H * H; float* U = Up + k * H * D; float* b = bp + k * H; float* V = Vp + k * O * H;
    float* c = cp + k * O;
    const float* xk = xp + k * T * B * D; const float* yk = yp + k * B;
    for (int64_t i = 0; i < H; ++i) {
      for (int64_t j = 0; j < H; ++j) wt[j * H + i] = W[i * H + j];
      for (int64_t d = 0; d < D; ++d) ut[d * H + i] = U[i * D + d];
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t bb = 0; bb < B; ++bb) {
        float* __restrict a = &hs[(t * B + bb) * H];
        for (int64_t i = 0; i < H; ++i) a[i] = b[i];
        for (int64_t d = 0; d < D; ++d) {
          const float xv = xk[(t * B + bb) * D + d];
          const float* __restrict ur = &ut[d * H];
          for (int64_t i = 0; i < H; ++i) a[i] += xv * ur[i];
        }
        if (t > 0) {
          const float* __restrict hp = &hs[((t - 1) * B + bb) * H];
          for (int64_t j = 0; j < H; ++j) {
            const float hj = hp[j];
            const float* __restrict wr = &wt[j * H];
            for (int64_t i = 0; i < H; ++i) a[i] += hj * wr[i];
          }
        }
        for (int64_t i = 0; i < H; ++i) a[i] = act(a[i], relu);
      }
    double loss = 0.0;
    for (int64_t bb = 0; bb < B; ++bb) {
      const float* hT = &hs[((T - 1) * B + bb) * H];
      for (int64_t o = 0; o < O; ++o) {
        float s = c[o];
        for (int64_t i = 0; i < H; ++i) s += V[o * H + i] * hT[i];
        logits[o] = s;
      }
      if (ce) {
        const int64_t label = (int64_t)yk[bb];
        float top = logits[0];
        for (int64_t o = 1; o < O; ++o) top = std::max(top, logits[o]);
        double total = 0.0;
        for (int64_t o = 0; o < O; ++o) total += std::exp((double)(logits[o] - top));
        loss += std::log(total) + top - logits[label];
        for (int64_t o = 0; o < O; ++o)
          g[bb * O + o] = (std::exp((double)(logits[o] - top)) / total - (o == label ? 1.0 : 0.0)) / B;
      } else {
        const float err = logits[0] - yk[bb];
        loss += (double)err * err;
        g[bb] = 2.0 * err / B;
      }
    }
    loss /= B;
    std::fill(gV.begin(), gV.end(), 0.f);
    std::fill(gc.begin(), gc.end(), 0.f);
    for (int64_t bb = 0; bb < B; ++bb) {
      const float* hT = &hs[((T - 1) * B + bb) * H];
      float* dT = &deltas[((T - 1) * B + bb) * H];
      for (int64_t i = 0; i < H; ++i) dT[i] = 0.f;
      for (int64_t o = 0; o < O; ++o) {
        const float go = g[bb * O + o];
        gc[o] += go;
        for (int64_t i = 0; i < H; ++i) { gV[o * H + i] += go * hT[i]; dT[i] += go * V[o * H + i]; }
      }
      for (int64_t i = 0; i < H; ++i) dT[i] *= slope(hT[i], relu);
    }
    for (int64_t t = T - 1; t > 0; --t)
      for (int64_t bb = 0; bb < B; ++bb) {
        const float* __restrict dt = &deltas[(t * B + bb) * H];
        float* __restrict cr = &carries[((t - 1) * B + bb) * H];
        for (int64_t j = 0; j < H; ++j) cr[j] = 0.f;
        for (int64_t i = 0; i < H; ++i) {
          const float di = dt[i];
          const float* __restrict wr = W + i * H;
          for (int64_t j = 0; j < H; ++j) cr[j] += di * wr[j];
        }
        const float* hp = &hs[((t - 1) * B + bb) * H];
        float* dp = &deltas[((t - 1) * B + bb) * H];
        for (int64_t j = 0; j < H; ++j) dp[j] = cr[j] * slope(hp[j], relu);
      }
    std::fill(gW.begin(), gW.end(), 0.f);
    std::fill(gUt.begin(), gUt.end(), 0.f);
    std::fill(gb.begin(), gb.end(), 0.f);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t bb = 0; bb < B; ++bb) {
        const float* __restrict dt = &deltas[(t * B + bb) * H];
        if (t > 0) {
          const float* __restrict hp = &hs[((t - 1) * B + bb) * H];
          for (int64_t i = 0; i < H; ++i) {
            const float di = dt[i];
            float* __restrict gr = &gW[i * H];
            for (int64_t j = 0; j < H; ++j) gr[j] += di * hp[j];
          }
        }
        for (int64_t d = 0; d < D; ++d) {
          const float xv = xk[(t * B + bb) * D + d];
          float* __restrict gr = &gUt[d * H];
          for (int64_t i = 0; i < H; ++i) gr[i] += xv * dt[i];
        }
        for (int64_t i = 0; i < H; ++i) gb[i] += dt[i];
      }
    for (int64_t i = 0; i < H; ++i)
      for (int64_t d = 0; d < D; ++d) gU[i * D + d] = gUt[d * H + i];
    double omega = 0.0;
    if (alpha != 0.0 && T > 1) {
      int64_t n_kept = 0;
      for (int64_t kk = 0; kk < T - 1; ++kk)
        for (int64_t bb = 0; bb < B; ++bb) {
          const float* up = &deltas[((kk + 1) * B + bb) * H];
          const float* cr = &carries[(kk * B + bb) * H];
          const float* hk = &hs[(kk * B + bb) * H];
          float us = 0.f, bs = 0.f;
          for (int64_t i = 0; i < H; ++i) {
            us += up[i] * up[i];
            const float bv = cr[i] * slope(hk[i], relu);
            bs += bv * bv;
          }
          upsq[kk * B + bb] = us;
          bnorm[kk * B + bb] = std::sqrt(bs);
          if (us >= 1e-20f) ++n_kept;
        }
      if (n_kept > 0) {
        std::fill(gO.begin(), gO.end(), 0.f);
        for (int64_t kk = 0; kk < T - 1; ++kk)
          for (int64_t bb = 0; bb < B; ++bb) {
            const float us = upsq[kk * B + bb];
            if (us < 1e-20f) continue;
            const double bn = bnorm[kk * B + bb];
            const double excess = bn * bn / us - 1.0;  // eq. 10: squared norms
            omega += excess * excess;
            const double coef = 4.0 * excess / (us * n_kept);
            const float* up = &deltas[((kk + 1) * B + bb) * H];
            const float* cr = &carries[(kk * B + bb) * H];
            const float* hk = &hs[(kk * B + bb) * H];
            for (int64_t j = 0; j < H; ++j) { const float s = slope(hk[j], relu); nvec[j] = cr[j] * s * s; }
            for (int64_t i = 0; i < H; ++i) {
              const float ci = (float)(coef * up[i]);
              float* __restrict gr = &gO[i * H];
              const float* __restrict nv = nvec.data();
              for (int64_t j = 0; j < H; ++j) gr[j] += ci * nv[j];
            }
          }
        omega /= n_kept;
        const float fa = alpha;
        for (int64_t i = 0; i < H * H; ++i) gW[i] += fa * gO[i];
      }
    }
    double sq = 0.0;
    for (float v : gW) sq += (double)v * v;
    for (float v : gU) sq += (double)v * v;
    for (float v : gb) sq += (double)v * v;
    for (float v : gV) sq += (double)v * v;
    for (float v : gc) sq += (double)v * v;
    const double norm = std::sqrt(sq);
    const float factor = norm > clip ? (float)(clip / norm) : 1.f;
    float* grads[5] = {gW.data(), gU.data(), gb.data(), gV.data(), gc.data()};
    const int64_t sizes[5] = {H * H, H * D, H, O * H, O};
    float* ps[5] = {W, U, b, V, c};
    for (int q = 0; q < 5; ++q) {
      float* m = adam ? firsts[q].data_ptr<float>() + k * sizes[q] : zeros_.data();
      float* v = adam ? seconds[q].data_ptr<float>() + k * sizes[q] : zeros_.data();
      apply(ps[q], grads[q], m, v, sizes[q], factor, adam, lr, step_size, correction);
    }
    outp[k * 3] = loss; outp[k * 3 + 1] = norm; outp[k * 3 + 2] = omega;
  }
  return out;
}

// torch_update's ops, in place where it can, called from C++: ATen's kernels (MKL's GEMM for the products) with
// the dispatcher but no Python between the ops. Step-major [T, K, B, H] buffers, so that a step is contiguous.
static torch::Tensor per_member(const torch::Tensor& v, const torch::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = v.size(0);
  return v.view(shape);
}

torch::Tensor aten_update(std::vector<torch::Tensor> params, std::vector<torch::Tensor> firsts,
                          std::vector<torch::Tensor> seconds, torch::Tensor x, torch::Tensor y, bool ce, bool relu,
                          double alpha, double clip, bool adam, double lr, double step_size, double correction) {
  torch::NoGradGuard no_grad;
  auto W = params[0], U = params[1], b = params[2], V = params[3], c = params[4];
  const int64_t K = x.size(0), T = x.size(1), B = x.size(2), D = x.size(3), H = W.size(1);
  auto states = torch::baddbmm(b.unsqueeze(1), x.view({K, T * B, D}), U.transpose(1, 2))
                    .view({K, T, B, H}).transpose(0, 1).contiguous();  // a_t before the recurrence, [T, K, B, H]
  auto w_t = W.transpose(1, 2);
  for (int64_t t = 0; t < T; ++t) {
    auto a = states[t];
    if (t > 0) a.baddbmm_(states[t - 1], w_t);
    if (relu) a.relu_(); else a.tanh_();
  }
  auto h = states[T - 1];
  auto out = torch::baddbmm(c.unsqueeze(1), h, V.transpose(1, 2));  // [K, B, O]
  torch::Tensor loss, g;
  if (ce) {
    auto labels = y.to(torch::kLong);
    auto logp = torch::log_softmax(out, -1);
    loss = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(-1);
    g = (logp.exp() - torch::one_hot(labels, out.size(-1)).to(out.scalar_type())) / (double)B;
  } else {
    auto err = out.select(-1, 0) - y;
    loss = err.square().mean(-1);
    g = (err * (2.0 / B)).unsqueeze(-1);
  }
  auto grad_V = torch::bmm(g.transpose(1, 2), h);
  auto grad_c = g.sum(1);
  auto slopes = relu ? states.gt(0).to(states.scalar_type()) : 1.0 - states * states;
  auto deltas = torch::empty_like(states);
  auto carries = torch::zeros_like(states);
  auto last = deltas[T - 1];
  torch::mul_out(last, torch::bmm(g, V), slopes[T - 1]);
  for (int64_t t = T - 1; t > 0; --t) {
    auto cr = carries[t - 1];
    auto previous = deltas[t - 1];
    torch::bmm_out(cr, deltas[t], W);  // rows: (W^T delta_t)^T
    torch::mul_out(previous, cr, slopes[t - 1]);
  }
  auto ds = deltas.transpose(0, 1);  // [K, T, B, H]
  auto hs = states.transpose(0, 1);
  auto grad_W = torch::bmm(ds.slice(1, 1).reshape({K, -1, H}).transpose(1, 2), hs.slice(1, 0, T - 1).reshape({K, -1, H}));
  auto grad_U = torch::bmm(ds.reshape({K, -1, H}).transpose(1, 2), x.view({K, -1, D}));
  auto grad_b = ds.sum({1, 2});
  auto omega = torch::zeros({K}, x.options());
  if (alpha != 0.0 && T > 1) {
    auto sl = slopes.slice(0, 0, T - 1).transpose(0, 1);
    auto upstream = ds.slice(1, 1);
    auto back = carries.slice(0, 0, T - 1).transpose(0, 1) * sl;
    auto up_sq = upstream.square().sum(-1);
    auto kept = up_sq.ge(1e-20);
    auto n_kept = kept.sum({1, 2}).to(x.scalar_type()).clamp_min(1.0).view({K, 1, 1});
    auto up_kept = torch::where(kept, up_sq, torch::ones_like(up_sq));
    auto zero = torch::zeros_like(up_sq);
    auto excess = torch::where(kept, back.square().sum(-1) / up_kept - 1.0, zero);  // eq. 10: squared norms
    omega = (excess.square() / n_kept).sum({1, 2});
    auto coef = 4.0 * excess / (up_kept * n_kept);
    auto grad_omega = torch::bmm((upstream * coef.unsqueeze(-1)).reshape({K, -1, H}).transpose(1, 2),
                                 (back * sl).reshape({K, -1, H}));
    grad_W.add_(grad_omega, alpha);
  }
  std::vector<torch::Tensor> grads = {grad_W, grad_U, grad_b, grad_V, grad_c};
  std::vector<torch::Tensor> squares;
  for (auto& gr : grads) squares.push_back(gr.square().flatten(1).sum(1));
  auto norm = torch::stack(squares, 1).sum(1).sqrt();
  auto factor = torch::where(norm.gt(clip), clip / norm, torch::ones_like(norm));
  for (size_t q = 0; q < 5; ++q) {
    auto gr = grads[q].mul_(per_member(factor, grads[q]));
    if (adam) {
      firsts[q].lerp_(gr, 1 - 0.9);
      seconds[q].mul_(0.999).addcmul_(gr, gr, 1 - 0.999);
      params[q].addcdiv_(firsts[q], (seconds[q].sqrt() / correction).add_(1e-8), -step_size);
    } else {
      params[q].add_(gr, -lr);
    }
  }
  return torch::stack({loss, norm, omega}, 1).to(torch::kFloat64);
}
"""  # noqa: E501

import numpy as np  # noqa: E402 - loop_update's globals (numba resolves them at compile time)
