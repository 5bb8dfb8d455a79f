"""The fitting behind ``quality`` (numpy only, deterministic): a gate over the kinds of fitting material and a gated
logistic model of "the ensemble is right", with its L2 strength chosen by cross-validation inside the fitting data.

Why a gate: at the same confidence the labelled sets differ in how often the ensemble is right (CK+'s posed lab
faces far more often than FER2013's web crops) and in which member's confidence ranks answers best (on FER2013 the
member trained on FER2013's training set, on CK+ the other). One logistic model for all of them splits the
difference and is right for none: measured held out, it missed CK+'s calibration (ECE 0.063) and FER2013's
ranking. The gate reads only how the face looks (``quality.gate_features``), never which set it came from; the
model it weights is one logistic score per kind (``quality.Calibration``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from fer_batch.analysis import quality

L2S = (3e-3, 1e-2, 3e-2)  # the expert's L2 strengths tried by the inner cross-validation (times the row count)
GATE_L2 = 3e-3  # the gate's L2 strength (on the mean loss)
GATE_STEPS, GATE_RATE = 3000, 1.0  # the gate's gradient descent: full batches, fixed steps (deterministic)
BLUR_WEIGHT = 0.15  # a blurred copy's weight, of its original's (see ``row_weights``)


def row_weights(sets: np.ndarray, blurred: np.ndarray) -> np.ndarray:
    """Each set weighs the same, a blurred copy ``BLUR_WEIGHT`` of its original; mean 1.

    Why equal weights: FER2013's 3,589 faces would otherwise pull the fit towards its own calibration. Why the blurred
    copies weigh less: they teach the direction of blur; at full weight they cost the originals' calibration.
    """
    w = np.array([1.0 / np.mean(sets == s) for s in sets]) * np.where(blurred, BLUR_WEIGHT, 1.0)
    return w / w.mean()


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of each column; a constant column (no pose anywhere) gets scale 1 and so a zero weight."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def logistic(z: np.ndarray, y: np.ndarray, weight: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Weighted logistic regression on the design ``z`` (Newton's method), ``penalty`` the L2 per column."""
    w = np.zeros(z.shape[1])
    for _ in range(60):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (weight * (p - y)) + penalty * w
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit_gate(g: np.ndarray, kind: np.ndarray, kinds: int) -> quality.Linear:
    """Multinomial logistic regression of the kind of material on the gate features, each kind weighing the same
    (blurred copies in full: a blurred FER2013 face is still a FER2013 face), by plain gradient descent."""
    mean, scale = standardise(g)
    z = np.concatenate([(g - mean) / scale, np.ones((len(g), 1))], axis=1)
    weight = np.array([1.0 / np.mean(kind == k) for k in kind])
    weight /= weight.mean()
    target = np.eye(kinds)[kind]
    w = np.zeros((z.shape[1], kinds))
    for _ in range(GATE_STEPS):
        a = z @ w
        p = np.exp(a - a.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = z.T @ ((p - target) * weight[:, None]) / len(z)
        grad[:-1] += GATE_L2 * w[:-1]
        w -= GATE_RATE * grad
    return quality.Linear(coef=w[:-1].T.copy(), intercept=w[-1].copy(), mean=mean, scale=scale)


def fit_expert(x: np.ndarray, weights: np.ndarray, y: np.ndarray, row_weight: np.ndarray, l2: float) -> quality.Linear:
    """The per-kind logistic scores, fitted jointly: the design holds each standardised feature times each kind's
    gate weight, and each kind's weight alone (its intercept, not penalised)."""
    mean, scale = standardise(x)
    xs = (x - mean) / scale
    kinds, n_feat = weights.shape[1], x.shape[1]
    z = np.concatenate([xs[:, None, :] * weights[:, :, None], weights[:, :, None]], axis=2).reshape(len(x), -1)
    penalty = np.tile(np.r_[np.full(n_feat, l2 * len(x)), 0.0], kinds)
    w = logistic(z, y, row_weight, penalty).reshape(kinds, n_feat + 1)
    return quality.Linear(coef=w[:, :-1].copy(), intercept=w[:, -1].copy(), mean=mean, scale=scale)


def fit(x: np.ndarray, g: np.ndarray, y: np.ndarray, sets: np.ndarray, blurred: np.ndarray,
        l2: float) -> tuple[tuple[str, ...], quality.Linear, quality.Linear]:  # fmt: skip
    """(kinds, gate, expert) fitted on these rows; the kinds are the sets present, in sorted order."""
    kinds = tuple(sorted(set(sets.tolist())))
    kind = np.array([kinds.index(s) for s in sets])
    gate = fit_gate(g, kind, len(kinds))
    return kinds, gate, fit_expert(x, quality.softmax(gate(g)), y, row_weights(sets, blurred), l2)


def inner_folds(units: Sequence[str]) -> np.ndarray:
    """0/1 per row by another byte of the same hash as the outer folds: inner halves split by subject/file too."""
    return np.array([hashlib.sha256(u.encode()).digest()[1] & 1 for u in units])


def choose_l2(x: np.ndarray, g: np.ndarray, y: np.ndarray, sets: np.ndarray, blurred: np.ndarray,
              units: Sequence[str]) -> float:  # fmt: skip
    """The L2 of ``L2S`` with the lowest weighted log-loss over an inner 2-fold split of these rows (the fitting
    half only: the held-out half never chooses)."""
    inner = inner_folds(units)
    loss = np.zeros(len(L2S))
    for f in (0, 1):
        tr, te = inner != f, inner == f
        kinds = tuple(sorted(set(sets[tr].tolist())))
        gate = fit_gate(g[tr], np.array([kinds.index(s) for s in sets[tr]]), len(kinds))
        for k, l2 in enumerate(L2S):
            expert = fit_expert(x[tr], quality.softmax(gate(g[tr])), y[tr], row_weights(sets[tr], blurred[tr]), l2)
            p = np.clip(quality.mixed(quality.softmax(gate(g[te])), expert(x[te])), 1e-6, 1 - 1e-6)
            loss[k] -= (row_weights(sets[te], blurred[te]) * (y[te] * np.log(p) + (1 - y[te]) * np.log(1 - p))).sum()
    return L2S[int(loss.argmin())]
