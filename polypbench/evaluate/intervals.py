"""Confidence intervals from the patient bootstrap: the expanded BCa interval, vectorised over metrics.

Every function takes replicate arrays with the replicate axis first and any trailing shape (metrics, classes, or
simulated data sets in ``benchmarks/ci_coverage.py``); NaN marks a replicate where the metric is undefined.

The interval (docs/scoring.md, "Confidence intervals"): the bias-corrected and accelerated (BCa) percentile interval
of Efron (1987), with the acceleration from the leave-one-patient-out jackknife (computed within each dataset, as the
bootstrap is stratified), and its nominal normal quantile replaced by Hesterberg's expanded quantile
``sqrt(n / (n - H)) * t(n - H)`` (n patients, H strata; Hesterberg 2015, "What teachers should know about the
bootstrap", section 4.5), which undoes the bootstrap's narrowness (its variance is (n - 1) / n of the plug-in one
per stratum) and uses Student's t for small n. ``benchmarks/ci_coverage.py`` measures its coverage against the
plain percentile interval.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

CI_LEVEL = 95.0
"""Nominal coverage of every interval, in percent."""
TIE_TOL = 1e-12
"""Relative tolerance under which a replicate counts as equal to the point value (metrics are ratios of sums added
in different orders, so mathematically equal values can differ in the last bits)."""


def t_ppf(q: float, df: np.ndarray | float) -> np.ndarray:
    """Student's t quantile ``q`` at ``df`` degrees of freedom: ``scipy.stats.t.ppf(q, df)``, computed as it does
    (``scipy.special.stdtrit`` inside (0, 1); -inf and inf at 0 and 1; NaN where ``df`` is not positive) without
    importing ``scipy.stats``, which costs about 0.8 s in every process that scores."""
    df = np.asarray(df, dtype=float)
    if 0.0 < q < 1.0:
        return np.where(df > 0, special.stdtrit(df, q), np.nan)
    edge = -np.inf if q == 0.0 else np.inf if q == 1.0 else np.nan
    return np.where(df > 0, edge, np.nan)


def t_sf(x: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """Student's t survival function: ``scipy.stats.t.sf(x, df)`` (``scipy.special.stdtr(df, -x)``; NaN where
    ``df`` is not positive), without importing ``scipy.stats``."""
    df = np.asarray(df, dtype=float)
    return np.where(df > 0, special.stdtr(df, -np.asarray(x, dtype=float)), np.nan)


def jackknife_counts(n_patients: int) -> np.ndarray:
    """(P, P) leave-one-patient-out multiplicities: ones minus the identity; row i drops patient i.

    Stacked under a bootstrap count matrix, the scorer computes every jackknife value of every metric with the same
    matrix products as the replicates.
    """
    return 1.0 - np.eye(n_patients)


def expanded_z(n_patients: int, n_strata: int = 1, level: float = CI_LEVEL) -> float:
    """The expanded two-sided quantile ``sqrt(n / (n - H)) * t_{1 - alpha/2}(n - H)``; NaN when n - H < 1.

    With one stratum this is Hesterberg's expanded percentile interval's quantile; with H strata of equal size the
    stratified bootstrap's variance is (n - H) / n of the plug-in variance, and n - H is the usual design degrees of
    freedom (patients minus strata).
    """
    df = n_patients - n_strata
    if df < 1:
        return math.nan
    return float(math.sqrt(n_patients / df) * t_ppf(1.0 - (1.0 - level / 100.0) / 2.0, df))


def influence(jack: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """(P, ...) empirical influence of each patient from the leave-one-patient-out values ``jack`` (P, ...): within
    stratum h (n_h patients), U_i = (n_h - 1) (mean_h - jack_i)."""
    jack = np.asarray(jack, dtype=np.float64)
    strata = np.asarray(strata)
    u = np.zeros_like(jack)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        part = jack[idx]
        u[idx] = (len(idx) - 1) * (part.mean(axis=0) - part)
    return u


def kurtosis_df(jack: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """(...) Student's degrees of freedom of a variance estimate from heavy-tailed patients:
    1 / (1 / (n - H) + max(k - 3, 0) / (2n)), k = n sum U^4 / (sum U^2)^2 the kurtosis of the patients' influence
    values (:func:`influence`), within [1, n - H] (n - H when every U is 0; NaN where a value is undefined).

    The variance of a sample variance is about 2 / df + (k - 3) / n in units of its square: with few patients and
    a skewed or lumpy metric (a mean of skewed size errors; two near-equal models that differ on a few patients) the
    plain n - H overstates how well the standard error is known, and the t quantile is too small."""
    strata = np.asarray(strata)
    n, h = len(strata), len(np.unique(strata))
    u = influence(jack, strata)
    u2 = (u**2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        kurt = np.where(u2 > 0, n * (u**4).sum(axis=0) / np.where(u2 > 0, u2, 1.0) ** 2, 3.0)
        df = 1.0 / (1.0 / max(n - h, 1) + np.maximum(kurt - 3.0, 0.0) / (2.0 * n))
    return np.where(np.isnan(kurt), np.nan, np.clip(df, 1.0, max(n - h, 1)))


def expansion(jack: np.ndarray, strata: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """(...) the factor by which the bootstrap-t's distances from the value are stretched:
    sqrt(n / (n - H)) t_{1 - alpha/2}(df) / z_{1 - alpha/2}, df from :func:`kurtosis_df` (the BCa interval's
    expansion, :func:`expanded_z`, with the degrees of freedom of a heavy-tailed variance); NaN when n - H < 1.

    The bootstrap-t alone covers 0.91-0.93 for MAE and bias at 20 patients with 1-4 polyps each (the size errors
    are skewed and clustered); stretched, 0.937 or more from 20 patients on (``benchmarks/ci_coverage.py``)."""
    strata = np.asarray(strata)
    n, h = len(strata), len(np.unique(strata))
    if n - h < 1:
        return np.full(np.shape(jack)[1:], np.nan)
    tail = 1.0 - (1.0 - level / 100.0) / 2.0
    df = kurtosis_df(jack, strata)
    factor = math.sqrt(n / (n - h)) * t_ppf(tail, np.nan_to_num(df, nan=1.0)) / float(special.ndtri(tail))
    return np.where(np.isnan(df), np.nan, factor)


def quantiles(reps: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per trailing position, the ``q`` quantile (in [0, 1]) of the defined replicates, with numpy's default linear
    interpolation (what :func:`numpy.percentile` gives); NaN where no replicate is defined.

    ``reps`` (R, ...); ``q`` (k, ...) broadcastable to the trailing shape: k quantiles per position.
    """
    reps = np.asarray(reps, dtype=np.float64)
    ordered = np.sort(reps, axis=0)  # NaN sort last
    m = (~np.isnan(reps)).sum(axis=0)
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (np.shape(q)[0], *reps.shape[1:]))
    h = np.clip(q, 0.0, 1.0) * np.maximum(m - 1, 0)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(m - 1, 0))
    a = np.take_along_axis(ordered, lo, axis=0)
    b = np.take_along_axis(ordered, hi, axis=0)
    out = a + (h - lo) * (b - a)
    out = np.where(b == a, a, out)  # no 0 * inf, exact at ties
    return np.where(m > 0, out, np.nan)


def percentile_interval(reps: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """(2, ...) plain percentile interval of the defined replicates (the scorer's interval before schema 3)."""
    tail = (1.0 - level / 100.0) / 2.0
    return quantiles(reps, np.array([tail, 1.0 - tail]).reshape(2, *([1] * (np.ndim(reps) - 1))))


def acceleration(jack: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """BCa acceleration from leave-one-patient-out values ``jack`` (P, ...), patients grouped by ``strata`` (P,).

    Within stratum h (n_h patients) the empirical influence of patient i is U_i = (n_h - 1) (mean_h - jack_i);
    a = sum U^3 / (6 (sum U^2)^1.5), 0 when every U is 0, NaN where any jackknife value is undefined (the metric's
    definition then hinges on one patient).
    """
    jack = np.asarray(jack, dtype=np.float64)
    u = influence(jack, strata)
    num = (u**3).sum(axis=0)
    den = 6.0 * (u**2).sum(axis=0) ** 1.5
    a = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return np.where(np.isnan(jack).any(axis=0), np.nan, a)


def bias_correction(point: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """BCa's z0 = Phi^-1(share of defined replicates below the point value, ties counted half), kept within
    [1 / (2m), 1 - 1 / (2m)] for m defined replicates so that it stays finite."""
    point = np.asarray(point, dtype=np.float64)
    reps = np.asarray(reps, dtype=np.float64)
    defined = ~np.isnan(reps)
    m = defined.sum(axis=0)
    tol = TIE_TOL * np.maximum(np.abs(point), 1.0)
    below = ((reps < point - tol) & defined).sum(axis=0)
    ties = ((np.abs(reps - point) <= tol) & defined).sum(axis=0)
    mm = np.maximum(m, 1)
    p0 = np.clip((below + 0.5 * ties) / mm, 0.5 / mm, 1.0 - 0.5 / mm)
    return np.where(m > 0, special.ndtri(p0), np.nan)


def bca_levels(z0: np.ndarray, a: np.ndarray, z: float) -> np.ndarray:
    """(2, ...) BCa quantile levels Phi(z0 + (z0 -/+ z) / (1 - a (z0 -/+ z))) for the two-sided quantile ``z``.

    Where ``1 - a (z0 -/+ z)`` is not positive (an acceleration too large for the level) the level is the extreme
    replicate (0 or 1).
    """
    out = []
    for sign, extreme in ((-1.0, 0.0), (1.0, 1.0)):
        w = z0 + sign * z
        den = 1.0 - a * w
        level = special.ndtr(z0 + w / np.where(den > 0, den, 1.0))
        out.append(np.where(den > 0, level, extreme))
    return np.stack(out)


def bca_interval(point: np.ndarray, reps: np.ndarray, jack: np.ndarray, strata: np.ndarray, z: float) -> np.ndarray:
    """(2, ...) BCa interval with two-sided quantile ``z`` (:func:`expanded_z`, or the plain normal quantile).

    ``point`` (...) the observed value, ``reps`` (R, ...) the bootstrap replicates, ``jack`` (P, ...) the
    leave-one-patient-out values, ``strata`` (P,) each patient's stratum. NaN where the point value, every replicate
    or a jackknife value is undefined, or ``z`` is NaN.
    """
    levels = bca_levels(bias_correction(point, reps), acceleration(jack, strata), z)
    ci = quantiles(reps, np.nan_to_num(levels, nan=0.5))
    bad = np.isnan(levels).any(axis=0) | np.isnan(np.asarray(point, dtype=np.float64)) | math.isnan(z)
    return np.where(bad, np.nan, ci)


def studentized_interval(point: np.ndarray, reps: np.ndarray, se_point: np.ndarray, se_reps: np.ndarray,
                         level: float = CI_LEVEL, expand: float | np.ndarray = 1.0) -> np.ndarray:
    """(2, ...) bootstrap-t interval [value - e q_hi SE, value - e q_lo SE], q the quantiles of (replicate - value)
    / SE*, e = ``expand``.

    ``se_point`` (...) and ``se_reps`` (R, ...) are each sample's own standard error (the scorer's linearization of
    a ratio of sums, :func:`ratio_se`). A replicate with SE* = 0 has t = 0 when it equals the value, else +-inf; a
    value with SE = 0 (every patient the same ratio) gives the zero-width interval. NaN where undefined.
    ``expand``: the small-sample expansion :func:`expansion` (1: the plain bootstrap-t).
    """
    point = np.asarray(point, dtype=np.float64)
    diff = np.asarray(reps, dtype=np.float64) - point
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se_reps > 0, diff / np.where(se_reps > 0, se_reps, 1.0), np.sign(diff) * np.inf)
    t = np.where(np.isnan(diff), np.nan, np.where(diff == 0, 0.0, t))
    tail = (1.0 - level / 100.0) / 2.0
    q = quantiles(np.where(np.isinf(t), np.sign(t) * 1e300, t), np.array([tail, 1.0 - tail]).reshape(
        2, *([1] * (np.ndim(t) - 1))))
    with np.errstate(invalid="ignore", over="ignore"):
        ci = np.stack([point - expand * q[1] * se_point, point - expand * q[0] * se_point])
    ci = np.where(se_point == 0, point, ci)
    return np.where(np.isnan(point) | np.isnan(se_point) | np.isnan(q).any(axis=0), np.nan, ci)


def ratio_se(total_a: np.ndarray, total_b: np.ndarray, moments: np.ndarray, strata_totals: np.ndarray,
             n_per_stratum: np.ndarray) -> np.ndarray:
    """Linearization standard error of theta = A / B, A and B sums over resampled patients, per row.

    ``moments`` (..., H, 3): per stratum h the sums over the row's patients (with their multiplicities) of a^2, ab
    and b^2; ``strata_totals`` (..., H, 2): per stratum the sums of a and b; ``n_per_stratum`` (H,) patients per
    stratum. With residuals r = a - theta b, the stratified variance is sum_h [sum r^2 - (sum r)^2 / n_h] / B^2.
    """
    theta = total_a / np.where(total_b != 0, total_b, np.nan)
    th = theta[..., None]
    q = moments[..., 0] - 2 * th * moments[..., 1] + th**2 * moments[..., 2]
    s = strata_totals[..., 0] - th * strata_totals[..., 1]
    var = (q - s**2 / np.maximum(n_per_stratum, 1)).sum(axis=-1)
    return np.sqrt(np.maximum(var, 0.0)) / np.abs(np.where(total_b != 0, total_b, np.nan))


def widen_at_bounds(point: np.ndarray, ci: np.ndarray, components: np.ndarray, weights: np.ndarray,
                    n_items: np.ndarray, z: float) -> np.ndarray:
    """(2, ...) ``ci`` widened for class rates observed at 0 or 1, whose binomial variation no bootstrap can see.

    A rate observed at 1 on n items (12 of 12 large polyps found) gives every replicate 1, so its interval would be
    [1, 1]; Wilson's score interval at x = n has the lower end n / (n + z^2). Each such component (``components``
    (C, ...), the per-class rates a metric averages with ``weights`` (C, ...), or the metric itself with weight 1)
    adds its Wilson deficit weight * z^2 / (n + z^2) in quadrature to the distance from the value to the lower end
    (to the upper end for a rate at 0); ``n_items`` (C, ...) are its patients. Clipped to [0, 1].
    """
    comp = np.asarray(components, dtype=np.float64)
    n = np.asarray(n_items, dtype=np.float64)
    deficit = np.where(n > 0, z**2 / np.where(n > 0, n + z**2, 1.0), 0.0) * np.asarray(weights)
    at_one = np.nan_to_num(comp, nan=0.5) >= 1.0 - TIE_TOL
    at_zero = np.nan_to_num(comp, nan=0.5) <= TIE_TOL
    d_lo = np.sqrt(((deficit * at_one) ** 2).sum(axis=0))
    d_hi = np.sqrt(((deficit * at_zero) ** 2).sum(axis=0))
    gap_lo = np.maximum(point - ci[0], 0.0)
    gap_hi = np.maximum(ci[1] - point, 0.0)
    lo = ci[0] - (np.sqrt(gap_lo**2 + d_lo**2) - gap_lo)
    hi = ci[1] + (np.sqrt(gap_hi**2 + d_hi**2) - gap_hi)
    return np.clip(np.stack([lo, hi]), 0.0, 1.0)



def paired_t(point: np.ndarray, reps: np.ndarray, jack: np.ndarray, strata: np.ndarray,
             level: float = CI_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The interval and two-sided p-value of a paired difference (``point`` (...), its replicates (R, ...) and
    leave-one-patient-out values (P, ...), patients grouped by ``strata`` (P,)): ((2, ...) interval, (...) p-value).

    value -/+ t_{1 - alpha/2}(df) SE s_lo/hi, SE the larger of the stratified jackknife standard error
    sqrt(sum_h (n_h - 1) / n_h sum_i (jack_i - mean_h)^2) and the bootstrap's (the replicates' sd, expanded by
    sqrt(n / (n - H)) as :func:`expanded_z`); df from :func:`kurtosis_df` (two near-equal models differ on a few
    patients: a heavy-tailed variance estimate); s_lo, s_hi >= 1 stretch the side on which the replicates reach
    further (2 (median - q_tail) / (q_(1-tail) - q_tail) and its mirror: a skewed difference, e.g. of MAE between a
    good and a poor model; never narrower than symmetric). p = 2 T_df(-|value| / (SE s)), s the side facing 0: p <
    alpha exactly when the interval excludes 0. The BCa interval of a difference covered only 0.88-0.94 at 10-150
    patients, this one 0.93 or more, and the test separates two equal entries about 5% of the time or less
    (``benchmarks/ranking_error.py``). A zero SE gives the zero-width interval (p 1 at a zero difference, else 0);
    NaN where the value, a jackknife value or every replicate is undefined, or n - H < 1.
    """
    point = np.asarray(point, dtype=np.float64)
    reps = np.asarray(reps, dtype=np.float64)
    jack = np.asarray(jack, dtype=np.float64)
    strata = np.asarray(strata)
    n, h = len(strata), len(np.unique(strata))
    var_jack = np.zeros(point.shape)
    for s in np.unique(strata):
        part = jack[strata == s]
        var_jack = var_jack + (len(part) - 1) / len(part) * ((part - part.mean(axis=0)) ** 2).sum(axis=0)
    defined = (~np.isnan(reps)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_boot = np.where(defined > 1, np.nanvar(np.where(defined > 1, reps, 0.0), axis=0, ddof=1), np.nan)
        se = np.sqrt(np.maximum(var_jack, var_boot * n / max(n - h, 1)))
    if n - h < 1:
        nan = np.full(point.shape, np.nan)
        return np.stack([nan, nan]), nan
    df = np.nan_to_num(kurtosis_df(jack, strata), nan=1.0)
    tail = (1.0 - level / 100.0) / 2.0
    q = t_ppf(1.0 - tail, df)
    spread = quantiles(reps, np.array([tail, 0.5, 1.0 - tail]).reshape(3, *([1] * np.ndim(point))))
    with np.errstate(invalid="ignore", divide="ignore"):
        width = spread[2] - spread[0]
        skew = [np.where(width > 0, 2.0 * (spread[1] - spread[0]) / np.where(width > 0, width, 1.0), 1.0),
                np.where(width > 0, 2.0 * (spread[2] - spread[1]) / np.where(width > 0, width, 1.0), 1.0)]
    stretch = [np.maximum(np.nan_to_num(k, nan=1.0), 1.0) for k in skew]  # (lower, upper): never narrower
    ci = np.stack([point - q * se * stretch[0], point + q * se * stretch[1]])
    toward_zero = np.where(point > 0, stretch[0], stretch[1])  # the side of the interval that reaches 0
    tol = TIE_TOL * np.maximum(np.abs(point), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = se * toward_zero
        p = np.where(scale > 0, 2.0 * t_sf(np.abs(point) / np.where(scale > 0, scale, 1.0), df),
                     np.where(np.abs(point) <= tol, 1.0, 0.0))
    bad = np.isnan(point) | np.isnan(se) | np.isnan(jack).any(axis=0)
    return np.where(bad, np.nan, ci), np.where(bad, np.nan, p)

