"""Tests of common/measures/relative_flatness.py against independent references.

References: the full autograd Hessian of the mean cross-entropy w.r.t. W (Def. 3.2 and Lemma A.2 of
the paper), explicit per-sample Python loops, and a hand-built neural-collapse configuration
(Prop. 5.2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common import prop52_bound, relative_flatness_bound, relative_flatness_exact

SHAPES = [(7, 3, 4), (20, 5, 6), (13, 2, 9)]


def _problem(n, c, d, seed, dtype=torch.float64, with_bias=True, feat_scale=1.0, w_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    features = feat_scale * torch.randn(n, d, generator=g, dtype=dtype)
    weight = w_scale * torch.randn(c, d, generator=g, dtype=dtype)
    bias = torch.randn(c, generator=g, dtype=dtype) if with_bias else None
    labels = torch.randint(0, c, (n,), generator=g)
    return features, weight, bias, labels


def _hessian(features, weight, bias, labels):
    """Full Hessian (C, D, C, D) of W -> mean_i CE(W phi_i + b, y_i), by autograd, float64."""
    phi = features.detach().double()
    b = None if bias is None else bias.detach().double()

    def loss(w):
        return F.cross_entropy(F.linear(phi, w, b), labels)

    return torch.autograd.functional.hessian(loss, weight.detach().double(), vectorize=True)


def _kappa_from_hessian(weight, hess):
    """Def. 3.2: sum_{s,s'} <w_s, w_s'> Tr(H[s,:,s',:])."""
    w = weight.detach().double()
    c = w.shape[0]
    total = 0.0
    for s in range(c):
        for t in range(c):
            block_trace = torch.diagonal(hess[s, :, t, :]).sum().item()
            total += torch.dot(w[s], w[t]).item() * block_trace
    return total


def _hessian_trace(hess):
    c, d = hess.shape[:2]
    return torch.diagonal(hess.reshape(c * d, c * d)).sum().item()


# ----------------------------------------------------------------------------------------------
# relative_flatness_exact vs the Hessian of the loss


@pytest.mark.parametrize("n,c,d", SHAPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_exact_matches_autograd_hessian(n, c, d, with_bias):
    features, weight, bias, labels = _problem(n, c, d, seed=n * 100 + c * 10 + d, with_bias=with_bias)
    hess = _hessian(features, weight, bias, labels)
    assert hess.shape == (c, d, c, d)
    expected = _kappa_from_hessian(weight, hess)
    got = relative_flatness_exact(features, weight, bias)
    assert got.item() == pytest.approx(expected, rel=1e-10, abs=0)


@pytest.mark.parametrize("n,c,d", SHAPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_bound_matches_frobenius_times_hessian_trace(n, c, d, with_bias):
    features, weight, bias, labels = _problem(n, c, d, seed=7 + n + c + d, with_bias=with_bias)
    hess = _hessian(features, weight, bias, labels)
    expected = weight.double().pow(2).sum().item() * _hessian_trace(hess)
    got = relative_flatness_bound(features, weight, bias)
    assert got.item() == pytest.approx(expected, rel=1e-10, abs=0)


def _bound_loop(features, weight, bias, temperature=1.0):
    """||W||_F^2 * (1/N) sum_i sum_k p_ik (1 - p_ik) ||phi_i||^2 with plain Python floats."""
    phi = features.tolist()
    w = weight.tolist()
    b = [0.0] * len(w) if bias is None else bias.tolist()
    frob = sum(x * x for row in w for x in row)
    total = 0.0
    for x in phi:
        z = [sum(wk[j] * x[j] for j in range(len(x))) + bk for wk, bk in zip(w, b)]
        z = [zk / temperature for zk in z]
        top = max(z)
        e = [math.exp(zk - top) for zk in z]
        p = [ek / sum(e) for ek in e]
        sq = sum(xj * xj for xj in x)
        total += sum(pk * (1 - pk) for pk in p) * sq
    return frob * total / len(phi)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.3, 4.0])
def test_bound_matches_python_loop(with_bias, temperature):
    features, weight, bias, _ = _problem(5, 3, 2, seed=11, with_bias=with_bias)
    expected = _bound_loop(features, weight, bias, temperature)
    got = relative_flatness_bound(features, weight, bias, temperature=temperature)
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_bound_with_explicit_logits(temperature):
    # logits= replaces W phi + b inside the softmax; its width C' need not match W's rows
    g = torch.Generator().manual_seed(23)
    features = torch.randn(4, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(2, 3, generator=g, dtype=torch.float64)
    scores = torch.randn(4, 5, generator=g, dtype=torch.float64)
    frob = sum(x * x for row in weight.tolist() for x in row)
    total = 0.0
    for x, z in zip(features.tolist(), scores.tolist()):
        e = [math.exp(zk / temperature) for zk in z]
        p = [ek / sum(e) for ek in e]
        total += sum(pk * (1 - pk) for pk in p) * sum(xj * xj for xj in x)
    expected = frob * total / 4
    got = relative_flatness_bound(features, weight, temperature=temperature, logits=scores)
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=0)
    # passing W phi + b explicitly is the same as the default
    _, w5, b5, _ = _problem(4, 5, 3, seed=24)
    assert relative_flatness_bound(features, w5, b5, temperature, logits=F.linear(features, w5, b5)).item() == \
        pytest.approx(_bound_loop(features, w5, b5, temperature), rel=1e-12, abs=0)


def test_temperature_changes_bound():
    features, weight, bias, _ = _problem(6, 4, 3, seed=3)
    plain = relative_flatness_bound(features, weight, bias)
    tempered = relative_flatness_bound(features, weight, bias, temperature=2.5)
    assert not torch.isclose(plain, tempered, rtol=1e-6)
    assert tempered.item() == pytest.approx(_bound_loop(features, weight, bias, 2.5), rel=1e-12, abs=0)


def test_bound_dominates_exact_on_random_cases():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, c, d = int(rng.integers(1, 12)), int(rng.integers(2, 8)), int(rng.integers(1, 8))
        feat_scale = float(10 ** rng.uniform(-2, 1.5))
        w_scale = float(10 ** rng.uniform(-2, 1.5))
        features, weight, bias, _ = _problem(n, c, d, seed=1000 + trial, with_bias=bool(trial % 2),
                                             feat_scale=feat_scale, w_scale=w_scale)
        exact = relative_flatness_exact(features, weight, bias).item()
        bound = relative_flatness_bound(features, weight, bias).item()
        assert exact >= -1e-12 * max(1.0, bound)
        assert bound >= exact * (1 - 1e-12), (trial, exact, bound)


# ----------------------------------------------------------------------------------------------
# invariances of the exact value


@pytest.mark.parametrize("a", [0.1, 3.7])
@pytest.mark.parametrize("with_bias", [False, True])
def test_exact_reparametrisation_invariance(a, with_bias):
    features, weight, bias, labels = _problem(9, 4, 5, seed=21, with_bias=with_bias)
    base = relative_flatness_exact(features, weight, bias)
    moved = relative_flatness_exact(features / a, weight * a, bias)
    assert moved.item() == pytest.approx(base.item(), rel=1e-10, abs=0)
    # sanity of the setup: the reparametrisation leaves the logits unchanged
    torch.testing.assert_close(F.linear(features / a, weight * a, bias), F.linear(features, weight, bias))
    # independent check: Hessian reference of the reparametrised problem gives the same number
    hess = _hessian(features / a, weight * a, bias, labels)
    assert _kappa_from_hessian(weight * a, hess) == pytest.approx(base.item(), rel=1e-10, abs=0)


@pytest.mark.parametrize("with_bias", [False, True])
def test_exact_row_shift_invariance(with_bias):
    features, weight, bias, _ = _problem(10, 5, 4, seed=5, with_bias=with_bias)
    shift = torch.tensor([0.7, -2.0, 1.3, 0.25], dtype=torch.float64)
    base = relative_flatness_exact(features, weight, bias)
    shifted = relative_flatness_exact(features, weight + shift, bias)
    assert shifted.item() == pytest.approx(base.item(), rel=1e-10, abs=0)


# ----------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("fn", [relative_flatness_exact, relative_flatness_bound])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_and_nonzero(fn, dtype):
    features, weight, bias, _ = _problem(8, 4, 3, seed=9, dtype=dtype)
    features.requires_grad_(True)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    value = fn(features, weight, bias)
    value.backward()
    for t in (features, weight, bias):
        assert t.grad is not None
        assert t.grad.dtype == dtype
        assert torch.isfinite(t.grad).all()
        assert t.grad.abs().sum() > 0


def test_exact_gradcheck_features_weight_bias():
    features, weight, bias, _ = _problem(4, 3, 2, seed=13)
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: relative_flatness_exact(f, weight, bias), (features,))
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    assert torch.autograd.gradcheck(relative_flatness_exact, (features, weight, bias))


def test_bound_gradcheck():
    features, weight, bias, _ = _problem(4, 3, 2, seed=17)
    for t in (features, weight, bias):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f, w, b: relative_flatness_bound(f, w, b, temperature=1.7),
                                    (features, weight, bias))


def test_exact_feature_gradient_vs_hessian_finite_differences():
    # gradient of the exact value w.r.t. phi from central differences of the *Hessian* reference
    features, weight, bias, labels = _problem(3, 3, 2, seed=31)
    features.requires_grad_(True)
    relative_flatness_exact(features, weight, bias).backward()
    h = 1e-5
    fd = torch.zeros_like(features)
    for i in range(features.shape[0]):
        for j in range(features.shape[1]):
            plus = features.detach().clone()
            minus = features.detach().clone()
            plus[i, j] += h
            minus[i, j] -= h
            fd[i, j] = (_kappa_from_hessian(weight, _hessian(plus, weight, bias, labels))
                        - _kappa_from_hessian(weight, _hessian(minus, weight, bias, labels))) / (2 * h)
    torch.testing.assert_close(features.grad, fd, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("fn", [relative_flatness_exact, relative_flatness_bound])
@pytest.mark.parametrize("with_bias", [False, True])
def test_float32_float64_agree(fn, with_bias):
    features, weight, bias, _ = _problem(12, 5, 6, seed=41, with_bias=with_bias)
    v64 = fn(features, weight, bias)
    f32 = features.float()
    w32 = weight.float()
    b32 = None if bias is None else bias.float()
    v32 = fn(f32, w32, b32)
    assert v64.dim() == 0 and v32.dim() == 0
    assert v64.dtype == torch.float64 and v32.dtype == torch.float32
    assert v32.item() == pytest.approx(v64.item(), rel=1e-4, abs=0)


# ----------------------------------------------------------------------------------------------
# Prop. 5.2 under exact neural collapse


def _etf_means(k, d, norm, dtype=torch.float64):
    """k centred simplex-ETF vertices in R^d (d >= k), each of norm `norm`, summing to 0."""
    eye = torch.eye(d, dtype=dtype)[:k]  # (k, d) e_c
    centred = eye - eye.mean(0)
    return norm * centred / centred.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("k", [3, 5, 10])
@pytest.mark.parametrize("m", [0.5, 1.0, 3.0])
def test_prop52_chain_under_neural_collapse(k, m):
    d = k + 2
    means = _etf_means(k, d, m)
    # check the construction itself: zero global mean, equal norms, simplex angles
    assert means.sum(0).abs().max() < 1e-12
    torch.testing.assert_close(means.norm(dim=1), torch.full((k,), m, dtype=torch.float64))
    gram = means @ means.T / m**2
    off = ~torch.eye(k, dtype=torch.bool)
    torch.testing.assert_close(gram[off], torch.full((k * (k - 1),), -1.0 / (k - 1), dtype=torch.float64))

    labels = torch.arange(3 * k) % k  # 3 samples per class
    features = means[labels]  # exactly collapsed
    for scale in np.geomspace(0.01, 20, 25):
        weight = float(scale) * means
        exact = relative_flatness_exact(features, weight).item()
        bound = relative_flatness_bound(features, weight).item()
        rhs = prop52_bound(float(scale), k, m)
        assert exact <= bound * (1 + 1e-12), (scale, exact, bound)
        assert bound <= rhs * (1 + 1e-12) + 1e-300, (scale, bound, rhs)


def _collapse_closed_forms(scale, k, m):
    """Exact and bound under exact collapse with W = scale * ETF means (mu_G = 0), derived by hand.

    Logit gap lambda M^2 k/(k-1); e = exp(-gap); p_true = 1/(1+(k-1)e), p_other = e/(1+(k-1)e).
    bound: ||W||^2 = lambda^2 k M^2, ||phi||^2 = M^2, sum_k p(1-p) = (k-1) e (2 + (k-2) e) / (1+(k-1)e)^2.
    exact: Tr Cov_p(w) = lambda^2 M^2 (1 - (p_true - p_other)^2) = lambda^2 M^2 k e (2 + (k-2) e) / (1+(k-1)e)^2,
           times ||phi||^2 = M^2; i.e. exact = bound / (k - 1).
    """
    e = math.exp(-scale * m**2 * k / (k - 1))
    common_factor = e * (2 + (k - 2) * e) / (1 + (k - 1) * e) ** 2
    bound = scale**2 * k * m**4 * (k - 1) * common_factor
    exact = scale**2 * k * m**4 * common_factor
    return exact, bound


@pytest.mark.parametrize("k", [3, 10])
def test_collapse_closed_form_moderate_scales(k):
    # logit gaps up to ~12: float64 keeps ~1e-10 relative accuracy
    m = 1.0
    means = _etf_means(k, k + 1, m)
    features = means[torch.arange(2 * k) % k]
    for scale in np.geomspace(0.01, 8.0, 20):
        exact_ref, bound_ref = _collapse_closed_forms(float(scale), k, m)
        weight = float(scale) * means
        assert relative_flatness_exact(features, weight).item() == pytest.approx(exact_ref, rel=1e-9, abs=0)
        assert relative_flatness_bound(features, weight).item() == pytest.approx(bound_ref, rel=1e-9, abs=0)


@pytest.mark.parametrize("k", [3, 10])
def test_collapse_closed_form_near_one_hot_float64(k):
    # Larger scales: predictions almost one-hot (logit gap up to ~60). The true values are normal
    # float64 numbers (>= 1e-25), so a float64 implementation should keep ~1e-9 relative accuracy.
    # KNOWN LIBRARY ISSUE (see report): exact uses sum_s p_s||w_s||^2 - ||W^T p||^2 and bound uses
    # p (1 - p), both cancel catastrophically; beyond a gap of ~37 exact returns 0.0 and bound half
    # the true value.
    m = 1.0
    means = _etf_means(k, k + 1, m)
    features = means[torch.arange(2 * k) % k]
    for scale in np.geomspace(10.0, 60.0, 8):
        exact_ref, bound_ref = _collapse_closed_forms(float(scale), k, m)
        weight = float(scale) * means
        assert relative_flatness_exact(features, weight).item() == pytest.approx(exact_ref, rel=1e-9, abs=0), scale
        assert relative_flatness_bound(features, weight).item() == pytest.approx(bound_ref, rel=1e-9, abs=0), scale


@pytest.mark.parametrize("a", [5.0, 20.0, 40.0])
def test_two_class_one_dim_closed_form(a):
    # phi = [1], W = [[a], [0]], no bias: p = sigmoid(a), 1 - p = sigmoid(-a) (computed stably).
    # exact = ||phi||^2 (p a^2 - (p a)^2) = a^2 p (1-p);  bound = ||W||^2 * 2 p (1-p) = 2 a^2 p (1-p).
    p = 1 / (1 + math.exp(-a))
    q = 1 / (1 + math.exp(a))
    phi = torch.tensor([[1.0]], dtype=torch.float64)
    weight = torch.tensor([[a], [0.0]], dtype=torch.float64)
    assert relative_flatness_exact(phi, weight).item() == pytest.approx(a * a * p * q, rel=1e-9, abs=0)
    assert relative_flatness_bound(phi, weight).item() == pytest.approx(2 * a * a * p * q, rel=1e-9, abs=0)


def test_prop52_bound_hand_values():
    # lambda = 1, k = 3, M = 1: exponent lambda M^2 k/(k-1) = 3/2
    #   1 * 27 * 1 * e^{-1.5} / (1 + 2 e^{-1.5})^2
    assert prop52_bound(1.0, 3, 1.0) == pytest.approx(27 * math.exp(-1.5) / (1 + 2 * math.exp(-1.5)) ** 2,
                                                      rel=1e-14, abs=0)
    # lambda = 2, k = 5, M = 0.5: exponent 2 * 0.25 * 5/4 = 0.625, prefactor 4 * 125 * 0.0625 = 31.25
    assert prop52_bound(2.0, 5, 0.5) == pytest.approx(31.25 * math.exp(-0.625) / (1 + 4 * math.exp(-0.625)) ** 2,
                                                      rel=1e-14, abs=0)
    assert prop52_bound(0.0, 4, 2.0) == 0.0


def test_prop52_bound_decays():
    values = [prop52_bound(float(s), 10, 1.0) for s in np.geomspace(5, 200, 30)]
    assert all(b < a for a, b in zip(values, values[1:]))
    assert prop52_bound(50.0, 10, 1.0) < 1e-15
    assert prop52_bound(200.0, 10, 1.0) < 1e-85
    with pytest.raises(ValueError):
        prop52_bound(1.0, 1, 1.0)


def test_shape_errors():
    with pytest.raises(ValueError):
        relative_flatness_exact(torch.zeros(3, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError):
        relative_flatness_bound(torch.zeros(4), torch.zeros(2, 4))
