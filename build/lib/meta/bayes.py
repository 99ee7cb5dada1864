"""Bayesian random-effects meta-analysis without sampling (works for k = 1, 2, 3, ...).

The normal-normal hierarchical model (NNHM; Röver 2020, section 2)::

    yi | theta_i ~ N(theta_i, vi),   theta_i | mu, tau ~ N(mu, tau^2),

with ``vi`` known, independent priors ``p(mu)`` and ``p(tau)``:

* ``p(tau)``: half-normal or half-Cauchy with scale ``tau_scale`` (on the
  scale of ``yi``), the weakly informative priors recommended when there are
  few studies (Friede et al. 2017; Röver et al. 2021);
* ``p(mu)``: the improper uniform prior (``mu_prior=None``) or a normal prior
  ``N(mean, sd^2)`` (``mu_prior=(mean, sd)``).

Computation (Röver 2020, section 2; bayesmeta computes the same integrals,
approximating the mixture for mu by a finite one, see its ``delta`` and
``epsilon`` arguments):

* Conditional on tau, with ``wi(tau) = 1/(vi + tau^2)`` and, for the normal
  prior, the prior counted as one more "study" ``y0 = mean`` with weight
  ``w0 = 1/sd^2`` (no tau^2 added; ``w0 = 0`` for the uniform prior)::

      mu | tau, y ~ N(mu_hat(tau), V(tau)),
      V(tau) = 1 / (w0 + sum wi),   mu_hat(tau) = V(tau) (w0 y0 + sum wi yi).

* The marginal likelihood of tau (mu integrated out)::

      p(y | tau) ∝ sqrt(V(tau)) prod (vi + tau^2)^(-1/2)
                   exp(-1/2 [sum wi (yi - mu_hat)^2 + w0 (y0 - mu_hat)^2]),

  and ``p(tau | y) ∝ p(tau) p(y | tau)``.  With the
  uniform prior and k = 1 the likelihood is constant in tau, so the posterior
  of tau is its (proper) prior and ``mu | tau ~ N(y1, v1 + tau^2)``: still
  proper, because v1 > 0.
* Every posterior summary is an integral over tau of a closed form: the
  marginal posterior of mu is the mixture over ``p(tau | y)`` of
  ``N(mu_hat(tau), V(tau))``; a new study's true effect ``theta_new`` the
  mixture of ``N(mu_hat(tau), V(tau) + tau^2)`` (Röver 2020, section 2).

Numerics (deterministic, no sampling).  The tau integral is split into
Gauss-Legendre panels (16 nodes each): ``[0, tau_a]`` in tau itself (the
integrand is a smooth function of tau^2 there; ``tau_a`` = 0.1 x the smallest
scale of the problem: tau_scale, sqrt(vi), the spread of yi), then panels in
``log(tau)`` and, for the half-Cauchy prior, a last one in ``1/tau`` beyond
``e^8`` x the largest scale (there the integrand is a power of 1/tau times a
smooth function); under the half-normal prior the log panels end where the
integrand and its tau and tau^2 moments have fallen below ``e^-40`` of their
peak.  Each panel is bisected until its value agrees with that of its two
halves to 1e-13 of the total, for the normalising constant and every moment
that is reported (80-180 nodes for typical data).  Quantiles are roots
(safeguarded Newton) of the mixture CDFs ``sum_j w_j Phi((x - mu_hat_j)/s_j)``
over the nodes; tau quantiles are roots of the tau CDF integrated panel by
panel.  Reported quantities agree with an independent R computation
(``integrate`` + ``uniroot`` on the model in matrix form;
``tests/r/bayes_reference.R``) to ~1e-11 and with scipy ``quad`` to 1e-10
(``tests/test_bayes.py``); a call takes about 2 ms
(``benchmarks/bench_bayes.py``).

Moments that do not exist are reported as ``inf`` (or ``nan`` for a mean
that is undefined): under the half-Cauchy prior the posterior of tau has a
polynomial tail ``tau^-(2 + b)`` with ``b = k - 1`` (uniform mu prior) or
``b = k`` (normal mu prior), so E[tau] needs b >= 1, E[tau^2] b >= 2; under
the uniform mu prior ``V(tau) ~ tau^2 / k``, so the mean of mu needs E[tau]
and its SD E[tau^2] (e.g. k = 1, half-Cauchy, uniform mu prior: the posterior
mean of mu is undefined, its SD infinite; its quantiles are fine).

References
----------
Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R
package. J Stat Softw 93(6):1-51. doi:10.18637/jss.v093.i06
Friede T et al. (2017). Meta-analysis of few small studies in orphan
diseases. Res Synth Methods 8:79-91.
Röver C et al. (2021). On weakly informative prior distributions for the
heterogeneity parameter in Bayesian random-effects meta-analysis. Res Synth
Methods 12:448-474.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta.pool import _check_pair, _fmt

__all__ = ["BayesResult", "bayes_pool", "bayes_sensitivity", "TAU_PRIORS"]

TAU_PRIORS = ("halfnormal", "halfcauchy")

_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
_CUT = 40.0  # the tau integrand is cut where it is below e^-40 of its peak
_PANEL_TOL = 1e-13  # panel vs its two halves, relative to the total
_WORST_TOL = 1e-9  # coarsest panel check accepted (every reported quantity stays within 1e-6)
_MAX_PANELS = 4096  # panels still to refine at once; beyond, the posterior cannot be integrated to _PANEL_TOL
_MAX_ROUNDS = 40
_PANEL_WIDTH = 2.0  # initial panels: 2 units of log(tau) (the mixture CDFs vary on a scale of ~1 there)
_TAIL_START = 8.0  # half-Cauchy: panels in 1/tau beyond e^8 times the largest scale of the problem
_LIN, _LOG, _INV = 0, 1, 2  # panel variable: tau, log(tau), 1/tau
_LOG_2_OVER_SQRT_2PI = math.log(2.0) - 0.5 * math.log(2.0 * math.pi)
_LOG_2_OVER_PI = math.log(2.0 / math.pi)
_GRID = 401  # points of mu_grid / tau_grid
_CELLS = 2**18  # tau x study cells per block of the likelihood (2 MB per temporary)


# --------------------------------------------------------------------------- input


_NOT_INTEGRABLE = (
    "bayes_pool: the posterior of tau cannot be integrated to the stated accuracy: the "
    "effects are so far apart, relative to their variances, that the likelihood lies far in the "
    "tail of the tau prior and its log is lost to rounding; check yi and vi (their scale and units), "
    "or use a tau prior whose tau_scale matches the spread of the effects"
)


def _check_inputs(yi, vi, tau_prior, tau_scale, mu_prior, level):
    if isinstance(yi, pd.Series) and isinstance(vi, pd.Series) and not yi.index.equals(vi.index):
        same = len(yi) == len(vi) and yi.index.is_unique and vi.index.is_unique and set(yi.index) == set(vi.index)
        if not same:
            only_y = [x for x in yi.index if x not in set(vi.index)][:5]
            only_v = [x for x in vi.index if x not in set(yi.index)][:5]
            raise ValueError(
                "yi and vi are pandas Series with different index labels; they must label the same studies "
                f"(labels only in yi: {only_y}, only in vi: {only_v}, duplicates are not matched)"
            )
        vi = vi.reindex(yi.index)  # same labels, other order: align by label
    y, v = _check_pair(yi, vi)
    if tau_prior not in TAU_PRIORS:
        raise ValueError(f"tau_prior must be one of {', '.join(map(repr, TAU_PRIORS))}; got {tau_prior!r}")
    if isinstance(tau_scale, bool) or not isinstance(tau_scale, (int, float, np.integer, np.floating)) or not (
        math.isfinite(tau_scale) and tau_scale > 0
    ):
        raise ValueError(f"tau_scale must be a finite number > 0 (e.g. 0.5); got {tau_scale!r}")
    if mu_prior is not None:
        try:
            m0, s0 = (float(x) for x in mu_prior)
        except (TypeError, ValueError):
            raise ValueError(f"mu_prior must be None (uniform) or a pair (mean, sd); got {mu_prior!r}") from None
        if not (math.isfinite(m0) and math.isfinite(s0) and s0 > 0):
            raise ValueError(f"mu_prior must be (mean, sd) with a finite mean and a finite sd > 0; got {mu_prior!r}")
        mu_prior = (m0, s0)
    return y, v, float(tau_scale), mu_prior, _checks.level_fraction(level)


# --------------------------------------------------------------------------- engine


class _Posterior:
    """The posterior of (mu, tau) for one data set: the model's closed forms
    (module docstring) and the tau quadrature (nodes, weights, panels)."""

    def __init__(self, y, v, tau_prior, tau_scale, mu_prior):
        self.y, self.v, self.k = y, v, y.size
        self.prior, self.s = tau_prior, tau_scale
        self.m0, self.w0 = (0.0, 0.0) if mu_prior is None else (mu_prior[0], 1.0 / mu_prior[1] ** 2)
        self.uniform_mu = mu_prior is None
        # existence of moments (module docstring): b = exponent of the likelihood's tail in tau
        b = self.k - 1 if self.uniform_mu else self.k
        heavy = tau_prior == "halfcauchy"
        self.tau_mean_ok = not heavy or b >= 1
        self.tau_sd_ok = not heavy or b >= 2
        self.mu_mean_ok = not self.uniform_mu or self.tau_mean_ok
        self.mu_sd_ok = not self.uniform_mu or self.tau_sd_ok
        self._i_mean = 1 + self.tau_mean_ok + self.tau_sd_ok  # column of f * mu_hat in _moments
        self._quadrature()

    # closed forms ---------------------------------------------------------
    def terms(self, tau):
        """log p(tau) + log p(y | tau) (up to a constant), mu_hat(tau), V(tau).

        Evaluated for blocks of tau values of at most ``_CELLS`` (tau x
        study) cells, so memory stays linear in k (at k = 1,000,000 a
        hundred-node block would take 800 MB per temporary)."""
        tau = np.asarray(tau, dtype=float)
        step = max(1, _CELLS // max(self.k, 1))
        if tau.size <= step:
            return self._terms(tau)
        parts = [self._terms(tau[i : i + step]) for i in range(0, tau.size, step)]
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _terms(self, tau):
        t2 = tau[:, None] ** 2
        s2 = self.v[None, :] + t2
        w = 1.0 / s2
        sw = w.sum(axis=1) + self.w0
        V = 1.0 / sw
        mh = (np.einsum("ij,j->i", w, self.y) + self.w0 * self.m0) * V  # no BLAS threads (a loaded 2-core VM)
        q = (w * (self.y[None, :] - mh[:, None]) ** 2).sum(axis=1) + self.w0 * (self.m0 - mh) ** 2
        loglik = -0.5 * np.log(s2).sum(axis=1) + 0.5 * np.log(V) - 0.5 * q
        return self.log_prior(tau) + loglik, mh, V

    def _log_magnitude(self, tau: float) -> float:
        """Size of the terms summed into log p(tau) + log p(y | tau) at ``tau`` (for the rounding bound)."""
        t = np.array([tau])
        s2 = self.v + tau * tau
        _, mh, _ = self.terms(t)
        q = (self.y - mh[0]) ** 2 / s2
        return float(abs(self.log_prior(t)[0]) + 0.5 * np.abs(np.log(s2)).sum() + 0.5 * q.sum()
                     + 0.5 * self.w0 * (self.m0 - mh[0]) ** 2)

    def log_prior(self, tau):
        u = tau / self.s
        if self.prior == "halfnormal":
            return _LOG_2_OVER_SQRT_2PI - math.log(self.s) - 0.5 * u * u
        return _LOG_2_OVER_PI - math.log(self.s) - np.log1p(u * u)

    def _integrand(self, kind, x):
        """Integrand of the tau integral in the panel variable x: exp(log p(tau)
        + log p(y|tau) - g0) dtau/dx, with tau = x (kind _LIN), e^x (_LOG) or
        1/x (_INV); also tau, mu_hat, V at the nodes."""
        tau = np.empty_like(x)
        jac = np.empty_like(x)
        m = kind == _LIN
        tau[m], jac[m] = x[m], 1.0
        m = kind == _LOG
        tau[m] = np.exp(x[m])
        jac[m] = tau[m]
        m = kind == _INV
        tau[m] = 1.0 / x[m]
        jac[m] = tau[m] ** 2
        lp, mh, V = self.terms(tau)
        return np.exp(lp - self.g0) * jac, tau, mh, V

    def _moments(self, f, tau, mh, V):
        """Integrand columns: density, tau, tau^2, mu_hat, V + mu_hat^2 (those that exist)."""
        cols = [f]
        if self.tau_mean_ok:
            cols.append(f * tau)
        if self.tau_sd_ok:
            cols.append(f * tau * tau)
        cols.append(f * mh)
        if self.mu_sd_ok:
            cols.append(f * (V + mh * mh))
        return np.stack(cols, axis=-1)

    def _quadrature(self):
        """Panels covering tau in [0, inf): [0, tau_a] in tau itself (the integrand is a
        smooth function of tau^2 there), [tau_a, tau_b] in log(tau) and, for the
        half-Cauchy prior, [tau_b, inf) in 1/tau (where the integrand is a power of
        1/tau times a smooth function); under the half-normal prior the log panels
        end where the integrand (and its moments) fall below e^-40 of the peak.
        Each panel is bisected until its 16-node Gauss-Legendre value agrees with
        that of its two halves to 1e-13 of the total (every moment reported)."""
        y, v, s = self.y, self.v, self.s
        scales = [s, math.sqrt(v.min()), math.sqrt(v.max())]
        spread = float(np.abs(y - y.mean()).max())
        if spread > 0:
            scales.append(spread)
        if not self.uniform_mu:
            scales += [abs(self.m0 - y.mean()) or s, 1.0 / math.sqrt(self.w0)]
        tau_a = 0.1 * min(scales)
        heavy = self.prior == "halfcauchy"
        z_top = math.log(max(scales)) + (_TAIL_START if heavy else 6.0)
        zc = np.arange(math.log(tau_a), z_top + 0.125, 0.25)
        lp, _, _ = self.terms(np.exp(zc))
        g = lp + zc
        self.g0 = float(g.max())
        # the log integrand is a sum of terms of size `mag` at its peak, so exp() of it carries a
        # relative rounding error of ~eps * mag: no panel can be checked more finely than that
        mag = self._log_magnitude(np.exp(zc[int(np.argmax(g))]))
        tol = max(_PANEL_TOL, 4.0 * np.finfo(float).eps * mag)
        if tol > _WORST_TOL:
            raise ValueError(_NOT_INTEGRABLE)
        if heavy:
            z_hi = z_top
        else:
            g2 = g + 2 * zc  # the tau^2 moment (and V ~ tau^2 under the uniform mu prior) reaches furthest
            keep = (g - g.max() > -_CUT) | (g2 - g2.max() > -_CUT)
            z_hi = zc[min(np.flatnonzero(keep)[-1] + 1, zc.size - 1)]
        n0 = max(2, int(math.ceil((z_hi - zc[0]) / _PANEL_WIDTH)))
        edges = np.linspace(zc[0], z_hi, n0 + 1)
        todo_k = [_LIN] + [_LOG] * n0 + ([_INV] if heavy else [])
        todo_a = [0.0] + list(edges[:-1]) + ([0.0] if heavy else [])
        todo_b = [tau_a] + list(edges[1:]) + ([math.exp(-z_hi)] if heavy else [])
        todo_k, todo_a, todo_b = np.array(todo_k), np.array(todo_a), np.array(todo_b)
        done = []  # (kind, a, b, f, tau, mh, V, weights) of accepted panels
        acc_tot = 0.0
        n = _GL_X.size
        for _ in range(_MAX_ROUNDS):
            kd, a, b = todo_k, todo_a, todo_b
            mid = 0.5 * (a + b)
            half = 0.5 * (b - a)
            q = 0.5 * half
            xw = mid[:, None] + half[:, None] * _GL_X[None, :]
            xl = (a + q)[:, None] + q[:, None] * _GL_X[None, :]
            xr = (mid + q)[:, None] + q[:, None] * _GL_X[None, :]
            ww = half[:, None] * _GL_W[None, :]
            wh = q[:, None] * _GL_W[None, :]
            P = a.size
            xall = np.concatenate([xw, xl, xr], axis=1)
            f, tau, mh, V = (t.reshape(P, 3 * n) for t in self._integrand(np.repeat(kd, 3 * n), xall.ravel()))
            cols = self._moments(f, tau, mh, V)
            whole = np.einsum("pn,pnc->pc", ww, cols[:, :n])
            fine = np.einsum("pn,pnc->pc", wh, cols[:, n : 2 * n]) + np.einsum("pn,pnc->pc", wh, cols[:, 2 * n :])
            # each column's error is judged against its size: |column|, except the mean of mu, judged
            # against f (|mu_hat| + sd), the posterior's own scale (a mean near 0 is rounding noise)
            size = np.abs(cols)
            size[..., self._i_mean] = f * (np.abs(mh) + np.sqrt(V))
            size_fine = np.einsum("pn,pnc->pc", wh, size[:, n : 2 * n]) + np.einsum("pn,pnc->pc", wh, size[:, 2 * n :])
            tot = size_fine.sum(axis=0) + acc_tot
            err = (np.abs(whole - fine) / np.where(tot > 0, tot, 1.0)).max(axis=1)
            ok = err <= tol
            # an accepted panel keeps its own 16 nodes (the halves only estimated its error)
            done.append((kd[ok], a[ok], b[ok], *(t[ok][:, :n] for t in (f, tau, mh, V)), ww[ok]))
            acc_tot = acc_tot + np.einsum("pn,pnc->pc", ww[ok], size[ok][:, :n]).sum(axis=0)
            if ok.all():
                break
            if 2 * int((~ok).sum()) > _MAX_PANELS:
                raise ValueError(_NOT_INTEGRABLE)
            todo_k = np.concatenate([kd[~ok], kd[~ok]])
            todo_a = np.concatenate([a[~ok], mid[~ok]])
            todo_b = np.concatenate([mid[~ok], b[~ok]])
        else:  # pragma: no cover - the integrand is smooth; never reached in tests
            raise ValueError(_NOT_INTEGRABLE)
        kd, a, b, f, tau, mh, V, w = (np.concatenate([d[i] for d in done]) for i in range(8))
        lo = np.where(kd == _LIN, a, np.where(kd == _LOG, np.exp(a), 1.0 / np.where(kd == _INV, b, 1.0)))
        order = np.argsort(lo, kind="stable")
        self.pk, self.pa, self.pb, self.p_lo = kd[order], a[order], b[order], lo[order]
        f, tau, mh, V, w = f[order], tau[order], mh[order], V[order], w[order]
        panel_int = (w * f).sum(axis=1)
        self.Z = float(panel_int.sum())
        self.panel_cdf = np.concatenate([[0.0], np.cumsum(panel_int)]) / self.Z
        wn = (w * f).ravel() / self.Z
        self.tau_n, self.mh_n, self.V_n, self.w_n = tau.ravel(), mh.ravel(), V.ravel(), wn
        sig = wn > 1e-18 * wn.max()  # nodes that matter for the mixtures over tau
        self.mix_w, self.mix_m = wn[sig], self.mh_n[sig]
        self.mix_sd = np.sqrt(self.V_n[sig])
        self.pred_sd = np.sqrt(self.V_n[sig] + self.tau_n[sig] ** 2)

    # tau --------------------------------------------------------------------
    def tau_pdf(self, t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        out = np.zeros_like(t)
        pos = t >= 0
        if pos.any():
            lp, _, _ = self.terms(t[pos])
            out[pos] = np.exp(lp - self.g0) / self.Z
        return out

    def _partial(self, i: int, x: float) -> tuple[float, float]:
        """P(tau <= tau(x) | y) for x in panel i, and |dP/dx| (one likelihood pass)."""
        kd, a, b = self.pk[i], self.pa[i], self.pb[i]
        lo, hi = (x, b) if kd == _INV else (a, x)
        h = 0.5 * (hi - lo)
        nodes = np.append(lo + h + h * _GL_X, x)
        f, _, _, _ = self._integrand(np.full(nodes.size, kd), nodes)
        return float(self.panel_cdf[i] + h * (_GL_W @ f[:-1]) / self.Z), float(f[-1]) / self.Z

    def tau_cdf(self, t: float) -> float:
        if t <= self.p_lo[0]:
            return 0.0
        i = int(np.searchsorted(self.p_lo, t, side="right")) - 1
        kd = self.pk[i]
        x = t if kd == _LIN else (math.log(t) if kd == _LOG else 1.0 / t)
        if (kd != _INV and x >= self.pb[i]) or (kd == _INV and x <= self.pa[i]):
            return float(self.panel_cdf[i + 1])
        return self._partial(i, x)[0]

    def tau_quantile(self, p: float) -> float:
        c = self.panel_cdf
        i = min(max(int(np.searchsorted(c, p, side="left")) - 1, 0), self.pa.size - 1)
        kd, lo, hi = self.pk[i], float(self.pa[i]), float(self.pb[i])
        n = _GL_X.size
        t, w = self.tau_n[n * i : n * (i + 1)], self.w_n[n * i : n * (i + 1)]
        if kd == _INV:  # nodes ascend in 1/tau: reverse to ascend in tau
            t, w = t[::-1], w[::-1]
        j = min(int(np.searchsorted(c[i] + np.cumsum(w), p)), n - 1)  # start at the node where the CDF crosses p
        x0 = float(t[j]) if kd == _LIN else (math.log(t[j]) if kd == _LOG else 1.0 / t[j])
        sign = -1.0 if kd == _INV else 1.0  # in 1/tau the CDF decreases

        def fun(x):
            val, slope = self._partial(i, x)
            return sign * (val - p), slope

        x = _solve(fun, lo, hi, x0)
        return x if kd == _LIN else (math.exp(x) if kd == _LOG else 1.0 / x)

    # mixtures over tau -----------------------------------------------------
    def mix_cdf(self, x, sd, upper=False):
        arg = (x - self.mix_m) / sd
        return float(self.mix_w @ _lazy.special().ndtr(-arg if upper else arg))

    def mix_pdf(self, x, sd):
        x = np.atleast_1d(np.asarray(x, dtype=float))
        u = (x[:, None] - self.mix_m[None, :]) / sd[None, :]
        return (np.exp(-0.5 * u * u) / (sd * math.sqrt(2 * math.pi))[None, :]) @ self.mix_w

    def mix_quantile(self, p: float, sd) -> float:
        """Root of the mixture CDF: safeguarded Newton inside the bracket
        spanned by the components' own p-quantiles (the mixture's p-quantile
        lies between the smallest and the largest of them)."""
        qj = self.mix_m + sd * _lazy.special().ndtri(p)
        lo, hi = float(qj.min()), float(qj.max())
        if lo == hi:
            return lo
        x0 = float(np.clip(self.mix_w @ qj, lo, hi))
        w_sd = self.mix_w / (sd * math.sqrt(2 * math.pi))

        def fun(x):
            u = (x - self.mix_m) / sd
            return float(self.mix_w @ _lazy.special().ndtr(u)) - p, float(w_sd @ np.exp(-0.5 * u * u))

        return _solve(fun, lo, hi, x0)


def _solve(fun, lo: float, hi: float, x: float) -> float:
    """Root of an increasing function in [lo, hi] (fun(x) -> (value, slope)):
    Newton steps, bisection whenever a step leaves the bracket or the slope
    vanishes; stops when |fun| <= 1e-15 (fun is a CDF minus p) or the step is
    below 1e-15 relative."""
    for _ in range(200):
        val, slope = fun(x)
        if abs(val) <= 1e-15:  # a CDF is only this exact anyway
            return x
        if val < 0:
            lo = x
        else:
            hi = x
        step = val / slope if slope > 0 else math.inf
        new = x - step
        if not (lo < new < hi):
            new = 0.5 * (lo + hi)
        if abs(new - x) <= 1e-15 * max(abs(x), 1e-300) or hi - lo <= 2e-16 * max(abs(lo), abs(hi)):
            return new
        x = new
    return x  # pragma: no cover


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class BayesResult:
    """Posterior summaries of the normal-normal hierarchical model (see the
    module docstring for the model, priors and numerics).

    ``mu_*``: the overall effect mu (posterior median, mean, SD and the
    equal-tailed ``level`` credible interval); ``tau_*``: the heterogeneity SD
    tau (median, mean, SD, equal-tailed interval); ``p_positive`` = P(mu > 0 |
    y); ``pred_low, pred_high``: equal-tailed ``level`` interval for the true
    effect theta_new of a new study; ``mu_grid, mu_density, tau_grid,
    tau_density``: the marginal posterior densities on 401-point grids (mu:
    its 0.05% to 99.95% quantiles; tau: 0 to its 99.9% quantile), for
    plotting.  Non-existent moments are ``inf`` (``nan`` for an undefined
    mean).  Methods ``prob_greater(delta)``, ``prob_less(delta)``,
    ``mu_cdf``, ``mu_pdf``, ``mu_quantile``, ``tau_cdf``, ``tau_pdf``,
    ``tau_quantile``, ``pred_cdf``, ``pred_quantile`` evaluate the posterior anywhere.
    """

    k: int
    mu_median: float
    mu_mean: float
    mu_sd: float
    mu_ci_low: float
    mu_ci_high: float
    tau_median: float
    tau_mean: float
    tau_sd: float
    tau_ci_low: float
    tau_ci_high: float
    p_positive: float
    pred_low: float
    pred_high: float
    level: float
    tau_prior: str
    tau_scale: float
    mu_prior_mean: float  # nan: uniform prior
    mu_prior_sd: float  # nan: uniform prior
    mu_grid: np.ndarray = field(repr=False, compare=False)
    mu_density: np.ndarray = field(repr=False, compare=False)
    tau_grid: np.ndarray = field(repr=False, compare=False)
    tau_density: np.ndarray = field(repr=False, compare=False)
    _post: _Posterior = field(repr=False, compare=False)

    @property
    def mu_prior(self) -> tuple[float, float] | None:
        """``None`` (uniform) or ``(mean, sd)``, as passed to :func:`bayes_pool`."""
        return None if math.isnan(self.mu_prior_sd) else (self.mu_prior_mean, self.mu_prior_sd)

    def prob_greater(self, delta: float = 0.0) -> float:
        """Posterior P(mu > delta | y)."""
        return self._post.mix_cdf(float(delta), self._post.mix_sd, upper=True)

    def prob_less(self, delta: float = 0.0) -> float:
        """Posterior P(mu < delta | y)."""
        return self._post.mix_cdf(float(delta), self._post.mix_sd)

    def mu_cdf(self, x: float) -> float:
        return self.prob_less(x)

    def mu_pdf(self, x) -> np.ndarray:
        """Marginal posterior density of mu at ``x`` (array)."""
        return self._post.mix_pdf(x, self._post.mix_sd)

    def mu_quantile(self, p: float) -> float:
        return self._post.mix_quantile(_prob(p), self._post.mix_sd)

    def pred_cdf(self, x: float) -> float:
        """P(theta_new <= x | y), theta_new the true effect of a new study."""
        return self._post.mix_cdf(float(x), self._post.pred_sd)

    def pred_quantile(self, p: float) -> float:
        """Quantile of the posterior predictive distribution of theta_new."""
        return self._post.mix_quantile(_prob(p), self._post.pred_sd)

    def tau_pdf(self, t) -> np.ndarray:
        """Marginal posterior density of tau at ``t`` (array; 0 for t < 0)."""
        return self._post.tau_pdf(t)

    def tau_cdf(self, t: float) -> float:
        return self._post.tau_cdf(float(t))

    def tau_quantile(self, p: float) -> float:
        return self._post.tau_quantile(_prob(p))

    def to_frame(self) -> pd.DataFrame:
        """One row: every scalar field (the grids left out)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if not isinstance(getattr(self, f.name), (np.ndarray, _Posterior))}
        return pd.DataFrame([row])

    def summary(self) -> str:
        """Text in bayesmeta's spirit: model and priors, then a table of
        median, mean, SD and the equal-tailed interval for tau, mu and
        theta_new, then P(mu > 0)."""
        pct = f"{100 * self.level:g}%"
        tp = {"halfnormal": "half-normal", "halfcauchy": "half-Cauchy"}[self.tau_prior]
        mp = "uniform (improper)" if self.mu_prior is None else f"normal(mean = {self.mu_prior_mean:g}, sd = {self.mu_prior_sd:g})"
        lines = [
            f"Bayesian random-effects meta-analysis (normal-normal hierarchical model; k = {self.k})",
            f"tau prior: {tp}(scale = {self.tau_scale:g}); mu prior: {mp}",
            "",
        ]
        cols = ["median", "mean", "sd", f"{pct} low", f"{pct} high"]
        rows = [
            ("tau", [self.tau_median, self.tau_mean, self.tau_sd, self.tau_ci_low, self.tau_ci_high]),
            ("mu", [self.mu_median, self.mu_mean, self.mu_sd, self.mu_ci_low, self.mu_ci_high]),
            ("theta_new", [math.nan, math.nan, math.nan, self.pred_low, self.pred_high]),
        ]
        cells = [[_cell(x) for x in vals] for _, vals in rows]
        width = [max(len(c), *(len(r[j]) for r in cells)) + 2 for j, c in enumerate(cols)]
        lines.append(" " * 10 + "".join(c.rjust(wd) for c, wd in zip(cols, width)))
        for (name, _), cl in zip(rows, cells):
            lines.append(name.ljust(10) + "".join(x.rjust(wd) for x, wd in zip(cl, width)))
        lines += ["", f"P(mu > 0) = {self.p_positive:.4f}; intervals are equal-tailed (posterior quantiles)"]
        lines.append("theta_new: true effect of a new study (posterior predictive distribution)")
        return "\n".join(lines)


def _cell(x: float) -> str:
    if math.isnan(x):
        return ""
    return "Inf" if math.isinf(x) else _fmt(x)


def _prob(p) -> float:
    p = float(p)
    if not 0 < p < 1:
        raise ValueError(f"p must be a probability strictly between 0 and 1; got {p!r}")
    return p


# --------------------------------------------------------------------------- public


def _fitted_data(yi, vi, level, who: str):
    """``(yi, vi, level)`` of ``verb(res)`` with a fitted result (metafor-style: the
    data come from the fit, the credible level defaults to its CI level), of
    ``verb(escalc_frame)``, or as given."""
    if hasattr(yi, "estimate") and hasattr(yi, "yi") and hasattr(yi, "vi"):
        if vi is not None:
            raise ValueError(f"{who}: got a fitted result and vi; pass the result alone ({who}(res)) or yi and vi")
        if yi.yi is None or yi.vi is None:
            raise ValueError(f"{who}: this result carries no yi/vi (built by hand); pass yi and vi")
        return yi.yi, yi.vi, (yi.level if level is None else level)
    if vi is None and isinstance(yi, pd.DataFrame) and {"yi", "vi"} <= set(yi.columns):
        return yi["yi"], yi["vi"], (0.95 if level is None else level)
    if vi is None:
        raise ValueError(f"{who}: vi is missing; pass {who}(yi, vi), {who}(res) with a fitted result, or an escalc frame")
    return yi, vi, (0.95 if level is None else level)


def bayes_pool(yi, vi=None, *, tau_prior: str = "halfnormal", tau_scale: float = 0.5, mu_prior=None,
               level: float | None = None) -> BayesResult:
    """Bayesian random-effects meta-analysis of ``yi`` with sampling
    variances ``vi`` in the normal-normal hierarchical model (Röver 2020),
    computed by deterministic quadrature over tau (no MCMC).

    ``tau_prior``: ``"halfnormal"`` or ``"halfcauchy"``, with scale
    ``tau_scale`` (on the scale of ``yi``; Röver et al. 2021).  ``mu_prior``:
    ``None`` for the improper uniform prior, or ``(mean, sd)`` for a normal
    prior.  ``level``: credible level of the equal-tailed intervals.

    Works for any k >= 1 (k = 1: the tau prior carries tau).  ``yi``/``vi``
    as in :func:`meta.pool.pool`; two pandas Series are aligned by their index
    labels (different labels are refused).  Bad input raises ``ValueError``
    naming the argument.  Returns a :class:`BayesResult`.

    ``bayes_pool(res)`` with a fitted result (:func:`meta.pool.pool`,
    :func:`meta.binary.rma_mh`, ...) takes its ``yi`` and ``vi`` (and its CI
    level unless ``level=`` is given); ``bayes_pool(es)`` takes an escalc frame's
    ``yi`` and ``vi`` columns.  ``level`` default 0.95.
    """
    yi, vi, level = _fitted_data(yi, vi, level, "bayes_pool")
    y, v, s, mu_prior, level = _check_inputs(yi, vi, tau_prior, tau_scale, mu_prior, level)
    post = _Posterior(y, v, tau_prior, s, mu_prior)
    lo_p, hi_p = (1 - level) / 2, (1 + level) / 2
    mu_mean = float(post.w_n @ post.mh_n) if post.mu_mean_ok else math.nan
    if post.mu_sd_ok:
        mu_var = float(post.w_n @ (post.V_n + post.mh_n**2)) - mu_mean**2
        mu_sd = math.sqrt(max(mu_var, 0.0))
    else:
        mu_sd = math.inf
    tau_mean = float(post.w_n @ post.tau_n) if post.tau_mean_ok else math.inf
    tau_sd = math.sqrt(max(float(post.w_n @ post.tau_n**2) - tau_mean**2, 0.0)) if post.tau_sd_ok else math.inf
    msd, psd = post.mix_sd, post.pred_sd
    mu_grid = np.linspace(post.mix_quantile(0.0005, msd), post.mix_quantile(0.9995, msd), _GRID)
    tau_grid = np.linspace(0.0, post.tau_quantile(0.999), _GRID)
    return BayesResult(
        k=int(y.size),
        mu_median=post.mix_quantile(0.5, msd),
        mu_mean=mu_mean,
        mu_sd=mu_sd,
        mu_ci_low=post.mix_quantile(lo_p, msd),
        mu_ci_high=post.mix_quantile(hi_p, msd),
        tau_median=post.tau_quantile(0.5),
        tau_mean=tau_mean,
        tau_sd=tau_sd,
        tau_ci_low=post.tau_quantile(lo_p),
        tau_ci_high=post.tau_quantile(hi_p),
        p_positive=post.mix_cdf(0.0, msd, upper=True),
        pred_low=post.mix_quantile(lo_p, psd),
        pred_high=post.mix_quantile(hi_p, psd),
        level=level,
        tau_prior=tau_prior,
        tau_scale=s,
        mu_prior_mean=math.nan if mu_prior is None else mu_prior[0],
        mu_prior_sd=math.nan if mu_prior is None else mu_prior[1],
        mu_grid=mu_grid,
        mu_density=post.mix_pdf(mu_grid, msd),
        tau_grid=tau_grid,
        tau_density=post.tau_pdf(tau_grid),
        _post=post,
    )


_SENS_COLUMNS = ["tau_prior", "tau_scale", "k", "mu_median", "mu_mean", "mu_sd", "mu_ci_low", "mu_ci_high",
                 "tau_median", "tau_ci_low", "tau_ci_high", "p_positive", "pred_low", "pred_high"]


def bayes_sensitivity(yi, vi, tau_scales=(0.25, 0.5, 1.0), *, tau_prior="halfnormal", mu_prior=None, level: float = 0.95) -> pd.DataFrame:
    """Prior sensitivity: :func:`bayes_pool` for every tau scale in
    ``tau_scales`` (and every prior in ``tau_prior`` when it is a list, e.g.
    ``("halfnormal", "halfcauchy")``).  One row per (tau_prior, tau_scale):
    ``tau_prior, tau_scale, k, mu_median, mu_mean, mu_sd, mu_ci_low,
    mu_ci_high, tau_median, tau_ci_low, tau_ci_high, p_positive, pred_low,
    pred_high``."""
    priors = [tau_prior] if isinstance(tau_prior, str) else list(tau_prior)
    try:
        scales = [tau_scales] if np.ndim(tau_scales) == 0 else list(tau_scales)
    except TypeError:
        raise ValueError(f"tau_scales must be a list of numbers > 0; got {tau_scales!r}") from None
    if not scales or not priors:
        raise ValueError("tau_scales and tau_prior must each hold at least one value")
    rows = []
    for p in priors:
        for sc in scales:
            r = bayes_pool(yi, vi, tau_prior=p, tau_scale=sc, mu_prior=mu_prior, level=level)
            rows.append({c: getattr(r, c) for c in _SENS_COLUMNS})
    return pd.DataFrame(rows, columns=_SENS_COLUMNS)
