"""Compiled loops of the second stage's features (numba).

A request scores ~200 stores for one user. In numpy that is ~150 small array operations
of a few microseconds each, so the call overhead, not the arithmetic, set the latency
(about 1 ms). These loops do the same work in one pass each; offline they run over
millions of pairs with the same code, so serving and evaluation stay one code path.

Compiled on first use and cached on disk (``cache=True``); ``warm_up`` compiles them
before a model serves its first request.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .geo import EARTH_RADIUS_M


@njit(cache=True, nogil=True)
def weighted_rows_at(indptr, indices, data, rows, weights, items):  # pragma: no cover - compiled
    """``sum_r weights[r] * m[rows[r], items]`` from CSR arrays, in ``items``' order (any
    order, repeats allowed).

    A table over the items' span gives each stored entry its output slot in one read: a
    binary search per entry cost ~14 ns, and a heavy user's similarity rows hold 10,000+
    entries. The table is 4 bytes per store of the span, at most the catalogue.
    """
    n = len(items)
    out = np.zeros(n, np.float32)
    if n == 0:
        return out
    lo, hi = items.min(), items.max()
    slot = np.full(hi - lo + 1, -1, np.int32)
    for k in range(n - 1, -1, -1):  # a repeated item keeps its first position's slot
        slot[items[k] - lo] = k
    acc = np.zeros(n, np.float64)
    for r in range(len(rows)):
        row, w = rows[r], weights[r]
        for p in range(indptr[row], indptr[row + 1]):
            c = indices[p]
            if lo <= c <= hi:
                k = slot[c - lo]
                if k >= 0:
                    acc[k] += w * data[p]
    for k in range(n):
        out[k] = acc[slot[items[k] - lo]]
    return out


@njit(cache=True, nogil=True)
def weighted_sum_at(indptr, indices, data, c_ptr, c_idx, c_dat, rows, weights, items):  # pragma: no cover - compiled
    """``weighted_rows_at``, read from ``m``'s rows (CSR arrays) or from its columns at
    ``items`` (``c_*``: the same matrix as CSC arrays), whichever holds fewer entries.

    A heavy user's rows are long (Foursquare NYC's heaviest user, 414 stores: 83,000
    RP3beta entries) while 200 candidates' columns hold ~20,000; a light user's rows are
    the shorter. The sums are the same, in another order.
    """
    by_rows = 0
    for r in range(len(rows)):
        by_rows += indptr[rows[r] + 1] - indptr[rows[r]]
    by_cols = 0
    for k in range(len(items)):
        by_cols += c_ptr[items[k] + 1] - c_ptr[items[k]]
    if by_rows <= by_cols:
        return weighted_rows_at(indptr, indices, data, rows, weights, items)
    return _weighted_cols_at(c_ptr, c_idx, c_dat, rows, weights, items)


@njit(cache=True, nogil=True)
def _weighted_cols_at(c_ptr, c_idx, c_dat, rows, weights, items):  # pragma: no cover - compiled
    """``weighted_rows_at`` from CSC arrays: per item, its column's entries in ``rows``,
    found through a table of the rows' weights over their span (repeated rows add up)."""
    n = len(items)
    out = np.zeros(n, np.float32)
    if n == 0 or len(rows) == 0:
        return out
    lo, hi = rows.min(), rows.max()
    weight_of = np.zeros(hi - lo + 1, np.float64)
    for r in range(len(rows)):
        weight_of[rows[r] - lo] += weights[r]
    for k in range(n):
        c = items[k]
        acc = 0.0
        for p in range(c_ptr[c], c_ptr[c + 1]):
            i = c_idx[p]
            if lo <= i <= hi:
                acc += weight_of[i - lo] * c_dat[p]
        out[k] = acc
    return out


#: Kernel widths of the density features, metres: a block, a walk, a district. They live
#: here, not in ``sources``, because ``pair_history`` compiles them in (numba freezes a global
#: tuple as constants) and numba's disk cache notices changes to this file only.
DENSITY_SCALES_M = (300.0, 1000.0, 3000.0)
#: Beyond this many kernel widths a store adds less than exp(-72) to a density: skipped.
_FAR = 12.0


def kernel_powers(scales) -> tuple[int, ...]:
    """Per width w, (W/w)^2 with W the widest: the power of the widest kernel that gives the
    kernel at w (see ``pair_history``). Whole numbers only."""
    widest = max(scales)
    powers = []
    for w in scales:
        ratio = (widest / w) ** 2
        if abs(ratio - round(ratio)) > 1e-9 * ratio:
            raise ValueError(f"kernel width {w} m: its squared ratio to the widest, {ratio:.4g}, is not a whole number")
        powers.append(int(round(ratio)))
    return tuple(powers)


# Compile-time constants of ``pair_history``: with the powers known, the squaring chains
# unroll into a few products (the heaviest user's 200 candidates: 324 -> 236 us).
_POWERS = kernel_powers(DENSITY_SCALES_M)
_INV_WIDE2 = 1.0 / max(DENSITY_SCALES_M) ** 2


@njit(cache=True, nogil=True)
def pair_history(
    users, items, plat, plon, lat, lon, x, unit, category, visits, visit_total, days, interval, out, cols
):  # pragma: no cover - compiled
    """Into ``out`` (pairs x features, float32), per pair (users[j], items[j]), the metres
    from the pair's point (plat[j], plon[j]; NaN: unknown) to the store, and what the user's
    own past says about the store (see ``sources.pair_features``). ``cols`` names the output
    columns: the densities at ``DENSITY_SCALES_M``, then nearest past store, point, category
    share, visits, visit share, visit rank, days since, due, user stores, then the days
    since the user's last visit to any store of the category, and the same over its interval.

    ``x``, ``visits``, ``days``: (indptr, indices, data) of users x stores CSR matrices with
    sorted indices: the past stores the densities, nearest store and category share read
    (``sources.HISTORY_STORES``; data unused), the visit counts, and the days since (may be
    empty: no times). ``lat``, ``lon``: the stores' degrees;
    ``unit``: their unit vectors, for the chords between stores (the arc follows from the
    chord). User -1 has no history.
    """
    n_s = len(_POWERS)
    c_near, c_point, c_share = cols[n_s], cols[n_s + 1], cols[n_s + 2]
    c_visits, c_vshare, c_vrank = cols[n_s + 3], cols[n_s + 4], cols[n_s + 5]
    c_days, c_due, c_ustores = cols[n_s + 6], cols[n_s + 7], cols[n_s + 8]
    c_cdays, c_cdue = cols[n_s + 9], cols[n_s + 10]
    x_ptr, x_idx = x[0], x[1]
    v_ptr, v_idx, v_dat = visits
    d_ptr, d_idx, d_dat = days
    have_days = len(d_ptr) > 0
    cat_latest = np.full(len(interval), np.inf)  # per category, for user ``since_of``
    since_of = -1
    past_of, m = -1, 0  # the user whose past stores these are, and how many
    past_unit, past_cat = np.empty((3, 0)), np.empty(0, category.dtype)
    chord2, kern = np.empty(0), np.empty(0)
    dens = np.empty(n_s)
    for j in range(len(items)):
        u, it = users[j], items[j]
        # The point's distance by the haversine, exact at short range (the chords below,
        # between stores, are for the densities)
        pa, pb, la, lb = np.radians(plat[j]), np.radians(lat[it]), np.radians(plon[j]), np.radians(lon[it])
        h = np.sin((pb - pa) / 2) ** 2 + np.cos(pa) * np.cos(pb) * np.sin((lb - la) / 2) ** 2
        out[j, c_point] = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(min(max(h, 0.0), 1.0))) if h == h else np.nan
        for s in range(n_s):
            out[j, cols[s]] = 0.0
        out[j, c_share] = 0.0
        out[j, c_visits] = 0.0
        out[j, c_vshare] = 0.0
        out[j, c_ustores] = 0.0
        if u < 0:
            continue
        lo, hi = x_ptr[u], x_ptr[u + 1]
        out[j, c_ustores] = v_ptr[u + 1] - v_ptr[u]
        if hi > lo:
            if u != past_of:  # the user's past stores side by side, once per user
                m = hi - lo
                if m > len(past_cat):
                    past_unit, past_cat = np.empty((3, m)), np.empty(m, category.dtype)
                    chord2, kern = np.empty(m), np.empty(m)
                for q in range(m):
                    past = x_idx[lo + q]
                    past_unit[0, q], past_unit[1, q], past_unit[2, q] = unit[past, 0], unit[past, 1], unit[past, 2]
                    past_cat[q] = category[past]
                past_of = u
            nearest_c2, same = _history_kernels(unit[it], category[it], past_unit, past_cat, m, chord2, kern, dens)
            for s in range(n_s):
                out[j, cols[s]] = dens[s]
            out[j, c_near] = 2.0 * EARTH_RADIUS_M * np.arcsin(min(np.sqrt(nearest_c2) / 2.0, 1.0))
            out[j, c_share] = same / m
        count = _at(v_ptr, v_idx, v_dat, u, it)
        if count > 0:
            out[j, c_visits] = count
            out[j, c_vshare] = count / max(visit_total[u], 1.0)
            above = 0
            for p in range(v_ptr[u], v_ptr[u + 1]):
                if v_dat[p] > count:
                    above += 1
            out[j, c_vrank] = 1 + above
        if have_days:
            since = _at(d_ptr, d_idx, d_dat, u, it)
            if since > 0:
                out[j, c_days] = since
                out[j, c_due] = since / interval[category[it]]
            # A category the user bought from lately is not due, whichever of its stores it was.
            # Each category's latest visit, once per user (a request's pairs are one user's):
            # the user's whole history, so not once per pair.
            if u != since_of:
                if since_of >= 0:
                    for p in range(d_ptr[since_of], d_ptr[since_of + 1]):
                        cat_latest[category[d_idx[p]]] = np.inf
                for p in range(d_ptr[u], d_ptr[u + 1]):
                    c = category[d_idx[p]]
                    cat_latest[c] = min(cat_latest[c], d_dat[p])
                since_of = u
            cat = category[it]
            cat_since = cat_latest[cat]
            if cat_since < np.inf:
                out[j, c_cdays] = cat_since
                out[j, c_cdue] = cat_since / interval[cat]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _history_kernels(a, cat, past_unit, past_cat, m, chord2, kern, dens):  # pragma: no cover - compiled
    """One store (unit vector ``a``, category ``cat``) against a user's ``m`` past stores
    (``past_unit``: 3 x m unit vectors; ``past_cat``): the densities at each width into
    ``dens``; returns the smallest squared chord and the past stores of the same category.
    ``chord2``, ``kern``: scratch of >= m.

    Loops of plain arithmetic, so that they run four past stores per instruction (AVX2):
    hence ``_exp_neg`` rather than ``np.exp``, a library call per value (numba has no
    vector exp here), and the reordered sums that fastmath allows. The heaviest user's 200
    candidates x 64 past stores, the whole ``pair_history``: 233-248 -> 107-112 us.
    """
    ax, ay, az = a[0], a[1], a[2]
    px, py, pz = past_unit[0], past_unit[1], past_unit[2]
    to_z2 = EARTH_RADIUS_M * EARTH_RADIUS_M * _INV_WIDE2  # squared chord -> squared widest widths
    same = 0
    for q in range(m):
        # The squared chord stands in for the squared arc in the kernels. Their relative gap
        # is (d/R)^2/24: 1e-8 at 3 km, 1e-6 at 36 km (12 widths, where a store adds
        # < exp(-72)); it spares a root and an arcsine per past store. As |a - p|^2, not
        # 2 - 2 a.p: no cancellation, so a store is 0 m from itself and 100 m are exact to
        # ~1e-11, not ~1e-6.
        dx, dy, dz = ax - px[q], ay - py[q], az - pz[q]
        c2 = dx * dx + dy * dy + dz * dz
        chord2[q] = c2
        # A store's kernel at each width is a whole power of its kernel at the widest:
        # exp(-z^2/2 (W/w)^2) = exp(-z^2/2)^((W/w)^2). One exp per past store and a few
        # products instead of one exp per width. (Past the cut its value is not used.)
        z = c2 * to_z2
        kern[q] = _exp_neg(-0.5 * (z if z < _FAR * _FAR else _FAR * _FAR))  # (NaN: the cut)
        same += past_cat[q] == cat
    for s in range(len(_POWERS)):
        total = 0.0
        for q in range(m):
            total += _kernel_power(kern[q], _POWERS[s], chord2[q] * to_z2)
        dens[s] = total
    nearest = np.inf
    for q in range(m):
        nearest = min(nearest, chord2[q])
    return nearest, same


#: 2^-k, k = 0.. 105, for ``_exp_neg`` (k <= 72 log2(e) + 0.5).
_POW2_NEG = np.array([2.0**-k for k in range(106)])
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10


@njit(cache=True, nogil=True, inline="always")
def _exp_neg(x):  # pragma: no cover - compiled
    """exp(x) for -72 <= x <= 0, within 3e-15: x = k ln2 + r with |r| <= ln2/2 (ln2 in
    two parts, so that the reduction is exact), e^r by its Taylor series to r^12 (the rest
    < 2e-16), times 2^k from a table. Plain arithmetic, so that a loop of it vectorises."""
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _POW2_NEG[int(-k)]


@njit(cache=True, nogil=True, inline="always")
def _kernel_power(e, k, z2w):  # pragma: no cover - compiled
    """``e``^``k`` by squaring (``e`` = exp(-z2w / 2)), or 0 past the cut: z2w k >= _FAR^2.
    Inside the cut nothing underflows, as e^k >= exp(-72)."""
    if not z2w * k < _FAR * _FAR:  # (NaN too)
        return 0.0
    b, v = e, 1.0
    while True:
        if k & 1:
            v *= b
        k >>= 1
        if k == 0:
            return v
        b *= b


@njit(cache=True, nogil=True)
def _at(indptr, indices, data, row, col):  # pragma: no cover - compiled
    """m[row, col] of a CSR matrix with sorted indices (0 where nothing is stored)."""
    lo, hi = indptr[row], indptr[row + 1]
    k = lo + np.searchsorted(indices[lo:hi], col)
    if k < hi and indices[k] == col:
        return data[k]
    return 0.0
