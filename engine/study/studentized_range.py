"""The studentized range distribution's quantile, computed here (numpy only), for the verdict of
the impact table (docs/impact.md)."""

from __future__ import annotations

import functools
import math

import numpy as np

LEVEL = 0.95  # confidence of the verdict


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 for erf (|error| < 1.5e-7): numpy has no vectorised erf.
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                       + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return np.asarray(0.5 * (1.0 + np.sign(x) * erf))


@functools.lru_cache(maxsize=64)
def _range_cdf_known_sigma(k: int) -> tuple[np.ndarray, np.ndarray]:
    """P(range of k standard normals <= x) on a grid of x (sigma known: infinite dof)."""
    # This grid keeps q within 0.002 of a 751 x 801 one at a fourteenth of the cost (1 ms a k):
    # it is computed in every `hp-tui run`'s report.
    xs = np.linspace(0.0, 15.0, 301)
    z = np.linspace(-8.0, 8.0, 321)
    phi = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    inner = _normal_cdf(z[None, :] + xs[:, None]) - _normal_cdf(z)[None, :]
    integrand = phi * np.clip(inner, 0.0, 1.0) ** (k - 1)
    # Trapezoid rule by hand (np.trapz was renamed across numpy versions).
    cdf = k * (z[1] - z[0]) * (integrand.sum(axis=1) - (integrand[:, 0] + integrand[:, -1]) / 2)
    return xs, np.minimum(cdf, 1.0)


@functools.lru_cache(maxsize=256)
def studentized_range_quantile(k: int, dof: int, level: float = LEVEL) -> float:
    """q such that P(range of k normal means / estimated sigma <= q) = level.

    sigma estimated with `dof` degrees of freedom (dof >= 1000 is treated as known sigma). Matches
    the printed tables to about 0.01 (k=2, dof=inf: 2.772; k=5, dof=10: 4.654).
    """
    if k < 2 or dof < 1:
        raise ValueError("need k >= 2 values and dof >= 1")
    xs, cdf_known = _range_cdf_known_sigma(k)

    def cdf(q: float) -> float:
        if dof >= 1000:
            return float(np.interp(q, xs, cdf_known, right=1.0))
        # Average over the distribution of s = sigma_hat / sigma = sqrt(chi2_dof / dof).
        s = np.linspace(1e-6, 1.0 + 12.0 / math.sqrt(2.0 * dof), 4001)
        log_density = (dof / 2 * math.log(dof) + (dof - 1) * np.log(s) - dof * s * s / 2
                       - (dof / 2 - 1) * math.log(2) - math.lgamma(dof / 2))
        inner = np.interp(q * s, xs, cdf_known, right=1.0)
        return float(np.sum(np.exp(log_density) * inner) * (s[1] - s[0]))

    lo, hi = 0.0, 500.0  # q(0.95) stays below ~100 for k <= 100 even at dof = 1
    for _ in range(40):  # to within 5e-10
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < level else (lo, mid)
    return (lo + hi) / 2
