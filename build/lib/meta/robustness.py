"""One meta-analysis under every defensible method: does the verdict hold?

With two to four studies, the choice of the random-effects method can decide
whether a confidence interval excludes 0.  DerSimonian-Laird with a Wald (z)
interval, still the most used, is too narrow when k is small (IntHout et al.
2014; Cochrane Handbook ch. 10.10.4): current guidance is REML (or
Paule-Mandel) with the Hartung-Knapp-Sidik-Jonkman (HKSJ) interval
(Cochrane Handbook v6.5 ch. 10; RevMan since 2025; Veroniki et al. 2016,
2019) and, for very few studies, a Bayesian model with a weakly informative
prior on tau (Friede et al. 2017; Röver et al. 2021).  :func:`robustness`
fits one data set under a *panel* of such methods, applies the claim verdict
rule (:func:`meta.verdicts.verdict`) to each and reports under how many the
first (primary) method's verdict holds.

The panel is data (:data:`DEFAULT_PANEL`, a tuple of :class:`PanelMethod`):

1. ``dl_z`` -- DerSimonian-Laird, Wald z CI (the primary analysis: what most
   reviews did; DerSimonian & Laird 1986);
2. ``reml_hksj`` -- REML (Viechtbauer 2005) with the HKSJ CI, t(k-1), its
   variance factor truncated at 1 so the CI is never narrower than the z CI
   (metafor ``test="adhoc"``; Knapp & Hartung 2003; Röver, Knapp & Friede 2015);
3. ``pm_hksj`` -- Paule-Mandel (Paule & Mandel 1982) with the same HKSJ CI;
4. ``fe`` -- common (fixed) effect, inverse variance (the answer if the
   studies share one true effect);
5. ``bayes_hn05`` -- Bayesian normal-normal hierarchical model, half-normal
   prior on tau with scale 0.5 (SMD scale; Friede et al. 2017, Röver et al.
   2021), uniform prior on mu, equal-tailed 95% credible interval
   (:func:`meta.bayes.bayes_pool`).

Per method: estimate (posterior median of mu for the Bayesian model), CI
(credible interval), prediction interval (metafor ``predict()``; posterior
predictive interval of a new study's true effect), p (NaN for the Bayesian
model), tau2 (posterior median of tau^2, i.e. the square of tau's median, for
the Bayesian model), ``prob_direction`` (posterior probability that mu lies
in the claimed direction; NaN for frequentist methods) and the verdict.

``holds`` = the number of panel methods whose verdict equals the primary
(first) method's verdict ("holds under n of m"); ``fragile`` = the methods do
not all give the same verdict.  With no claimed direction (``direction=None``)
the direction is that of the primary estimate, so the verdict says whether
the primary *finding* (its sign and whether its interval excludes 0) holds.
k = 1: the frequentist methods give the study itself (metafor); the Bayesian
row is the posterior (the tau prior carries the heterogeneity, so its
interval is wider); every verdict is ``insufficient data`` (nothing is
pooled).

References
----------
DerSimonian R, Laird N (1986). Control Clin Trials 7:177-188.
Friede T, Röver C, Wandel S, Neuenschwander B (2017). Meta-analysis of few
small studies in orphan diseases. Res Synth Methods 8:79-91.
Hartung J, Knapp G (2001). Stat Med 20:3875-3889.
Higgins JPT et al. (eds) (2024). Cochrane Handbook v6.5, ch. 10.
IntHout J, Ioannidis JPA, Borm GF (2014). BMC Med Res Methodol 14:25.
Knapp G, Hartung J (2003). Stat Med 22:2693-2710.
Röver C, Knapp G, Friede T (2015). BMC Med Res Methodol 15:99.
Röver C et al. (2021). Res Synth Methods 12:448-474.
Veroniki AA et al. (2016). Res Synth Methods 7:55-79.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from meta import _checks
from meta.bayes import BayesResult, bayes_pool
from meta.pool import PoolResult, pool
from meta.verdicts import verdict

__all__ = ["PanelMethod", "RobustnessResult", "robustness", "DEFAULT_PANEL", "COLUMNS"]


@dataclass(frozen=True)
class PanelMethod:
    """One method of a robustness panel.

    ``kind`` ``"frequentist"``: :func:`meta.pool.pool` with ``method``,
    ``test`` and ``pi``; ``kind`` ``"bayes"``: :func:`meta.bayes.bayes_pool`
    with ``tau_prior``, ``tau_scale`` and ``mu_prior`` (``None`` = uniform).
    ``label`` is the text shown in tables and figures; ``short`` a compact
    label for figure rows."""

    method_id: str
    label: str
    short: str
    kind: str = "frequentist"
    method: str = "DL"
    test: str = "z"
    pi: str = "default"
    tau_prior: str = "halfnormal"
    tau_scale: float = 0.5
    mu_prior: tuple | None = None

    def __post_init__(self):
        if self.kind not in ("frequentist", "bayes"):
            raise ValueError(f"PanelMethod {self.method_id!r}: kind must be 'frequentist' or 'bayes'; got {self.kind!r}")

    def fit(self, yi: np.ndarray, vi: np.ndarray, level: float, slab=None):
        """The fitted result (:class:`meta.pool.PoolResult` or :class:`meta.bayes.BayesResult`)."""
        if self.kind == "bayes":
            return bayes_pool(yi, vi, tau_prior=self.tau_prior, tau_scale=self.tau_scale, mu_prior=self.mu_prior, level=level)
        with warnings.catch_warnings():
            # k = 1: HKSJ falls back to z with a UserWarning (as metafor); the row says so through its CI
            warnings.filterwarnings("ignore", message=r"test=.* needs k >= 2", category=UserWarning)
            return pool(yi, vi, method=self.method, test=self.test, level=level, pi=self.pi, slab=slab)


#: the default panel (first = primary: DL + Wald z, the review's own method)
DEFAULT_PANEL: tuple[PanelMethod, ...] = (
    PanelMethod("dl_z", "DerSimonian-Laird, Wald z CI (primary, as the review)", "DerSimonian-Laird, z", method="DL", test="z"),
    PanelMethod("reml_hksj", "REML, HKSJ CI (t, k-1 df; never narrower than z)", "REML, HKSJ", method="REML", test="adhoc"),
    PanelMethod("pm_hksj", "Paule-Mandel, HKSJ CI (t, k-1 df; never narrower than z)", "Paule-Mandel, HKSJ", method="PM", test="adhoc"),
    PanelMethod("fe", "Common effect (fixed effect, inverse variance), z CI", "Common effect", method="FE", test="z"),
    PanelMethod("bayes_hn05", "Bayesian, half-normal prior on tau (scale 0.5, SMD scale), uniform prior on mu; equal-tailed credible interval",
                "Bayesian, HN(0.5)", kind="bayes", tau_prior="halfnormal", tau_scale=0.5, mu_prior=None),
)

#: columns of :meth:`RobustnessResult.to_frame`
COLUMNS = ("method_id", "label", "kind", "k", "estimate", "ci_low", "ci_high", "pi_low", "pi_high", "p", "tau2",
           "prob_direction", "verdict")


def _direction(direction) -> int | None:
    if direction is None:
        return None
    if isinstance(direction, (bool, np.bool_)) or direction not in (-1, 0, 1):
        raise ValueError(f"direction must be +1, -1, 0 (no difference) or None (the primary estimate's sign); got {direction!r}")
    return int(direction)


def _judged(direction: int | None, primary) -> tuple[int | None, str]:
    """The direction verdicts are judged against, and where it comes from."""
    if direction is not None:
        return direction, "claim"
    est0 = primary.estimate if isinstance(primary, PoolResult) else primary.mu_median
    return (int(np.sign(est0)) if np.isfinite(est0) else None), "primary estimate"


def _row(pm: PanelMethod, fit, direction: int) -> dict:
    if isinstance(fit, BayesResult):
        if direction == 1:
            prob = fit.prob_greater(0.0)
        elif direction == -1:
            prob = fit.prob_less(0.0)
        else:
            prob = math.nan
        est, lo, hi = fit.mu_median, fit.mu_ci_low, fit.mu_ci_high
        row = {"estimate": est, "ci_low": lo, "ci_high": hi, "pi_low": fit.pred_low, "pi_high": fit.pred_high,
               "p": math.nan, "tau2": fit.tau_median**2, "prob_direction": prob}
    else:
        row = {"estimate": fit.estimate, "ci_low": fit.ci_low, "ci_high": fit.ci_high, "pi_low": fit.pi_low,
               "pi_high": fit.pi_high, "p": fit.p, "tau2": fit.tau2, "prob_direction": math.nan}
    row = {"method_id": pm.method_id, "label": pm.label, "kind": pm.kind, "k": fit.k, **row}
    row["verdict"] = verdict(fit.k, row["estimate"], row["ci_low"], row["ci_high"], direction)
    return row


@dataclass(frozen=True)
class RobustnessResult:
    """One data set under every method of a panel (see the module docstring).

    ``rows``: one dict per method (keys :data:`COLUMNS`), in panel order;
    ``panel``: the :class:`PanelMethod` tuple; ``fits``: the fitted results
    (``PoolResult`` / ``BayesResult``) in the same order; ``direction``: the
    direction the verdicts were judged against and ``direction_source``
    (``"claim"`` or ``"primary estimate"``); ``holds``, ``m``, ``fragile``:
    see the module docstring."""

    k: int
    level: float
    direction: int | None
    direction_source: str
    rows: tuple
    panel: tuple = field(repr=False)
    fits: tuple = field(repr=False, compare=False)

    @property
    def m(self) -> int:
        """Number of methods in the panel."""
        return len(self.rows)

    @property
    def primary_verdict(self) -> str:
        return self.rows[0]["verdict"]

    @property
    def holds(self) -> int:
        """Number of methods whose verdict equals the primary (first) method's."""
        return sum(r["verdict"] == self.primary_verdict for r in self.rows)

    @property
    def holds_under(self) -> str:
        """``"n of m"``."""
        return f"{self.holds} of {self.m}"

    @property
    def fragile(self) -> bool:
        """True when the methods do not all give the same verdict."""
        return self.holds < self.m

    def judge(self, direction) -> "RobustnessResult":
        """The same fits judged against another ``direction`` (+1, -1, 0 or ``None`` = the primary
        estimate's sign), without refitting: one fit per analysis serves every claim it speaks to."""
        direction = _direction(direction)
        judged, source = _judged(direction, self.fits[0])
        rows = tuple(_row(pm, f, judged) for pm, f in zip(self.panel, self.fits))
        return replace(self, direction=judged, direction_source=source, rows=rows)

    def verdicts(self) -> dict:
        """``{method_id: verdict}``."""
        return {r["method_id"]: r["verdict"] for r in self.rows}

    def to_frame(self) -> pd.DataFrame:
        """One row per method, columns :data:`COLUMNS`."""
        return pd.DataFrame(list(self.rows), columns=list(COLUMNS))

    def summary(self) -> str:
        pct = f"{100 * self.level:g}%"
        src = "" if self.direction_source == "claim" else " (direction of the primary estimate)"
        d = {1: "positive", -1: "negative", 0: "no difference", None: "none"}[self.direction]
        lines = [f"Robustness of the verdict across {self.m} methods (k = {self.k}; expected direction: {d}{src})", ""]
        head = f"{'method':<26}{'estimate':>9}  {pct + ' interval':>20}  {'p':>7}  {'tau2':>7}  {'P(dir)':>7}  verdict"
        lines.append(head)
        for pm, r in zip(self.panel, self.rows):
            ci = f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
            lines.append(f"{pm.short:<26}{_num(r['estimate']):>9}  {ci:>20}  {_num(r['p']):>7}  {_num(r['tau2']):>7}  "
                         f"{_num(r['prob_direction']):>7}  {r['verdict']}")
        lines += ["", f"Verdict holds under {self.holds_under} methods" + ("; fragile: the methods disagree" if self.fragile else "")]
        lines.append("Bayesian rows: posterior median, equal-tailed credible interval, posterior predictive interval, median tau^2")
        return "\n".join(lines)


def _num(x) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.4f}"


def robustness(res_or_yi, vi=None, *, direction=None, panel=DEFAULT_PANEL, level: float | None = None) -> RobustnessResult:
    """Fit ``yi``/``vi`` (or a :class:`meta.pool.PoolResult`'s data) under
    every method of ``panel`` and judge each against ``direction``.

    ``direction``: +1 or -1 (the sign a claim expects), 0 (a claim of no
    difference) or ``None`` (the primary estimate's sign).  ``level``:
    confidence / credible level, default 0.95 (or the result's level when a
    ``PoolResult`` is passed).  Data are checked as :func:`meta.pool.pool`
    checks them.  Returns a :class:`RobustnessResult`.
    """
    direction = _direction(direction)
    if isinstance(res_or_yi, PoolResult):
        if vi is not None:
            raise ValueError("robustness: got a PoolResult and vi; pass either the result alone or yi and vi")
        if res_or_yi.yi is None or res_or_yi.vi is None:
            raise ValueError("robustness: this PoolResult carries no yi/vi (built by hand); pass yi and vi")
        yi, vi, slab = np.asarray(res_or_yi.yi), np.asarray(res_or_yi.vi), res_or_yi.slab or None
        level = res_or_yi.level if level is None else level
    else:
        if vi is None:
            raise ValueError("robustness: vi is missing; pass yi and vi, or a PoolResult from pool()")
        yi, slab = res_or_yi, None
    level = _checks.level_fraction(0.95 if level is None else level)  # the library's one reading (95 = 0.95)
    panel = tuple(panel)
    if not panel or not all(isinstance(p, PanelMethod) for p in panel):
        raise ValueError("panel must be a non-empty sequence of PanelMethod (first = primary)")
    ids = [p.method_id for p in panel]
    if len(set(ids)) != len(ids):
        raise ValueError(f"panel method_id values must be unique; got {ids}")
    # the primary fit checks the data (and the level) once, with pool's messages
    first = panel[0].fit(yi, vi, level, slab)
    y = np.asarray(getattr(first, "yi", None) if isinstance(first, PoolResult) else yi, dtype=float)
    v = np.asarray(getattr(first, "vi", None) if isinstance(first, PoolResult) else vi, dtype=float)
    if isinstance(first, PoolResult):
        level = first.level
    fits = [first] + [pm.fit(y, v, level, slab) for pm in panel[1:]]
    judged, source = _judged(direction, fits[0])
    rows = tuple(_row(pm, f, judged) for pm, f in zip(panel, fits))
    return RobustnessResult(k=int(fits[0].k), level=float(level), direction=judged, direction_source=source,
                            rows=rows, panel=panel, fits=tuple(fits))
