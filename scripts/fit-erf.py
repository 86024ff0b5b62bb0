# Fits the erf/erfc approximation used by kernels/gelu.ts (rerun to regenerate its coefficients).
# Needs numpy and mpmath; only a development tool, nothing imports it.
#   |z| < 1 : erf(z)  = z * Q(z^2)                         (Q: degree 6, fit error ~1e-9)
#   z  >= 1 : erfc(z) = t * exp(-z^2 + P(s)), t = 1/(1 + z/2), s = 3t - 1 in (-1, 1]  (P: degree 9, ~1e-8 relative)
# Writing erfc as t * exp(-z^2 + P) keeps its relative error flat far into the tail, which GELU needs
# for x << 0 where 1 + erf(x/sqrt2) cancels. Least squares on Chebyshev nodes (close to minimax).
import numpy as np
import mpmath as mp

mp.mp.dps = 40
C = 0.5          # t = 1 / (1 + C z)
TMAX = 1 / (1 + C)  # t at z = 1


def cheb_nodes(n):
    k = np.arange(n)
    return np.cos(np.pi * (k + 0.5) / n)


def fit_p(deg, n=600):
    s = cheb_nodes(n)
    y = []
    for sv in s:
        t = mp.mpf((sv + 1) / 2 * TMAX)
        z = (1 / t - 1) / C
        y.append(float(mp.log(mp.erfc(z) / t) + z * z))
    return np.linalg.lstsq(np.vander(s, deg + 1, increasing=True), np.array(y), rcond=None)[0]


def fit_q(deg, n=400):
    u = (cheb_nodes(n) + 1) / 2
    y = [float(mp.erf(mp.sqrt(v)) / mp.sqrt(v)) for v in u]
    return np.linalg.lstsq(np.vander(u, deg + 1, increasing=True), np.array(y), rcond=None)[0]


if __name__ == '__main__':
    P, Q = fit_p(9), fit_q(6)
    print('P (ascending powers of s):', [float(f'{v:.17g}') for v in P])
    print('Q (ascending powers of z^2):', [float(f'{v:.17g}') for v in Q])
    worst_p = max(abs(t * np.exp(-z * z + np.polyval(P[::-1], 2 * t / TMAX - 1)) / float(mp.erfc(z)) - 1)
                  for z in np.linspace(1, 12, 2000) for t in [1 / (1 + C * z)])
    worst_q = max(abs(z * np.polyval(Q[::-1], z * z) - float(mp.erf(z))) for z in np.linspace(1e-6, 1, 2000))
    print(f'float64 fit error: erfc tail relative {worst_p:.2e}, erf core absolute {worst_q:.2e}')
