"""Tests of common/measures/representativeness.py against brute-force double loops written from Petzka et al.'s
reference code (KDEpy gaussian kernel evaluated at the square root of the distance) and from the
textbook Nadaraya-Watson Gaussian estimate."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from common import representativeness, representativeness_terms

# `common.measures.representativeness` as an attribute is the function (re-exported by common/__init__.py and
# shadowing the submodule), so fetch the module itself for monkeypatching.
rep_module = importlib.import_module("common.measures.representativeness")

S, T, D, C = 7, 5, 3, 4


def _data(seed, s=S, t=T, d=D, c=C, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    train_features = scale * torch.randn(s, d, generator=g, dtype=dtype)
    train_logits = 2 * torch.randn(s, c, generator=g, dtype=dtype)
    val_features = scale * torch.randn(t, d, generator=g, dtype=dtype)
    val_logits = 2 * torch.randn(t, c, generator=g, dtype=dtype)
    val_labels = torch.randint(0, c, (t,), generator=g)
    return train_features, train_logits, val_features, val_logits, val_labels


def _ce(logits, label):
    """-log softmax(logits)[label] with plain floats."""
    top = max(logits)
    lse = top + math.log(sum(math.exp(z - top) for z in logits))
    return lse - logits[label]


def _dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def _petzka_brute(train_features, train_logits, val_features, val_logits, val_labels, bw):
    tf, tl = train_features.tolist(), train_logits.tolist()
    vf, vl, vy = val_features.tolist(), val_logits.tolist(), val_labels.tolist()
    norms = [math.sqrt(sum(x * x for x in row)) for row in tf]
    weights = [n / sum(norms) for n in norms]
    result = 0.0
    for j in range(len(vf)):
        loss_true = _ce(vl[j], vy[j])
        sum_loss_kde = 0.0
        for i in range(len(tf)):
            d = _dist(vf[j], tf[i])
            kernel = 1.0 / (bw * math.sqrt(2 * math.pi)) * math.exp(-((math.sqrt(d) / bw) ** 2) / 2)
            sum_loss_kde += weights[i] * kernel * _ce(tl[i], vy[j])
        mean_loss_kde = sum_loss_kde / len(tf)
        result += (loss_true - mean_loss_kde) / len(vf)
    return result


def _gaussian_brute(train_features, train_logits, val_features, val_logits, val_labels, bw):
    tf, tl = train_features.tolist(), train_logits.tolist()
    vf, vl, vy = val_features.tolist(), val_logits.tolist(), val_labels.tolist()
    total = 0.0
    for j in range(len(vf)):
        k = [math.exp(-_dist(vf[j], tf[i]) ** 2 / (2 * bw**2)) for i in range(len(tf))]
        a = [x / sum(k) for x in k]
        expected = sum(a[i] * _ce(tl[i], vy[j]) for i in range(len(tf)))
        total += _ce(vl[j], vy[j]) - expected
    return total / len(vf)


BRUTE = {"petzka": _petzka_brute, "gaussian": _gaussian_brute}


def _as_given_brute(train_features, train_logits, val_features, val_logits, val_labels, bw, kernel, delta):
    """App. D read literally: every training point weighs delta, KDEpy's 1-d Gaussian at sqrt(d) (petzka)
    or d (gaussian), no renormalisation and no extra 1/|S|. Returns (val loss term, KDE term)."""
    tf, tl = train_features.tolist(), train_logits.tolist()
    vf, vl, vy = val_features.tolist(), val_logits.tolist(), val_labels.tolist()
    loss_term = kde_term = 0.0
    for j in range(len(vf)):
        loss_term += _ce(vl[j], vy[j]) / len(vf)
        for i in range(len(tf)):
            d = _dist(vf[j], tf[i])
            r = math.sqrt(d) if kernel == "petzka" else d
            kde_term += delta * math.exp(-((r / bw) ** 2) / 2) / (bw * math.sqrt(2 * math.pi)) * _ce(tl[i], vy[j]) / len(vf)
    return loss_term, kde_term


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
@pytest.mark.parametrize("bw, delta", [(0.5, 0.02), (2.0, 0.3)])
def test_terms_match_brute_force_for_both_weightings(kernel, bw, delta):
    data = _data(12, scale=0.7)
    terms = representativeness_terms(*data, bandwidth=bw, kernel=kernel, weights=("normalised", "as_given"),
                                     sample_weight=delta)
    loss_term, kde_given = _as_given_brute(*data, bw, kernel, delta)
    assert set(terms) == {"val_loss", "kde_normalised", "kde_as_given"}
    assert all(v.dim() == 0 for v in terms.values())
    assert terms["val_loss"].item() == pytest.approx(loss_term, rel=1e-12)
    assert terms["kde_as_given"].item() == pytest.approx(kde_given, rel=1e-11, abs=1e-15)
    assert kde_given > 1e-3 * loss_term  # the case is not vacuous
    # the normalised term is the reference code's (petzka) or Nadaraya-Watson's (gaussian) KDE term
    assert (terms["val_loss"] - terms["kde_normalised"]).item() == pytest.approx(BRUTE[kernel](*data, bw), rel=1e-11,
                                                                                 abs=1e-14)
    # one weighting alone gives the same numbers, and representativeness() is their difference
    alone = representativeness_terms(*data, bandwidth=bw, kernel=kernel, weights=("as_given",), sample_weight=delta)
    assert alone["kde_as_given"].item() == pytest.approx(kde_given, rel=1e-11, abs=1e-15)
    rep = representativeness(*data, bandwidth=bw, kernel=kernel, weights="as_given", sample_weight=delta)
    assert rep.item() == pytest.approx(loss_term - kde_given, rel=1e-11, abs=1e-14)


def test_petzka_kde_term_is_tiny_at_grokking_size():
    """With the reference code's renormalised weights and extra 1/|S|, the KDE term is at most
    K(0)/(bw |S|) times the largest training loss: Rep equals the validation loss to ~1e-4 relative."""
    g = torch.Generator().manual_seed(13)
    s, t, d, c = 2000, 300, 16, 10
    train_features, val_features = torch.randn(s, d, generator=g), torch.randn(t, d, generator=g)
    train_logits, val_logits = torch.randn(s, c, generator=g), torch.randn(t, c, generator=g)
    val_labels = torch.randint(0, c, (t,), generator=g)
    data = (train_features.double(), train_logits.double(), val_features.double(), val_logits.double(), val_labels)
    terms = representativeness_terms(*data)
    bound = (-torch.log_softmax(data[1], 1)).max().item() / (math.sqrt(2 * math.pi) * s)
    assert 0 < terms["kde_normalised"].item() <= bound
    assert terms["kde_normalised"].item() < 1e-3 * terms["val_loss"].item()


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
@pytest.mark.parametrize("bw", [0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(kernel, bw, seed):
    data = _data(seed)
    expected = BRUTE[kernel](*data, bw)
    got = representativeness(*data, bandwidth=bw, kernel=kernel)
    assert got.dim() == 0 and got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, rel=1e-11, abs=1e-14)


def test_default_kernel_is_petzka_bandwidth_one():
    data = _data(3)
    assert representativeness(*data).item() == pytest.approx(_petzka_brute(*data, 1.0), rel=1e-11, abs=1e-14)


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
def test_coincident_point_matches_brute_force(kernel):
    train_features, train_logits, val_features, val_logits, val_labels = _data(4)
    val_features = val_features.clone()
    val_features[1] = train_features[3]  # distance exactly 0
    data = (train_features, train_logits, val_features, val_logits, val_labels)
    got = representativeness(*data, bandwidth=0.7, kernel=kernel)
    assert got.item() == pytest.approx(BRUTE[kernel](*data, 0.7), rel=1e-11, abs=1e-14)


def test_gaussian_kernel_far_points_no_underflow():
    # all distances large relative to bw: unnormalised weights underflow, the normalised ones do not
    data = list(_data(5, d=2))
    data[0] = data[0] + 0.0  # train
    data[2] = data[2] * 0.1 + 40.0  # val far away from all train points
    got = representativeness(*data, bandwidth=0.5, kernel="gaussian")
    assert torch.isfinite(got)
    # each val point's weight concentrates on its nearest train point(s): compare with a log-domain loop
    tf, tl = data[0].tolist(), data[1].tolist()
    vf, vl, vy = data[2].tolist(), data[3].tolist(), data[4].tolist()
    total = 0.0
    for j in range(len(vf)):
        logk = [-_dist(vf[j], tf[i]) ** 2 / (2 * 0.25) for i in range(len(tf))]
        top = max(logk)
        k = [math.exp(x - top) for x in logk]
        total += _ce(vl[j], vy[j]) - sum(k[i] / sum(k) * _ce(tl[i], vy[j]) for i in range(len(tf)))
    assert got.item() == pytest.approx(total / len(vf), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
@pytest.mark.parametrize("elements", [1, 10, 14])
def test_chunking(monkeypatch, kernel, elements):
    data = _data(6)
    unchunked = representativeness(*data, bandwidth=1.3, kernel=kernel).item()
    monkeypatch.setattr(rep_module, "_KERNEL_ELEMENTS", elements)
    # chunk = max(1, elements // S): 1, 1 and 2 validation rows -> 5, 5 and 3 chunks
    chunked = representativeness(*data, bandwidth=1.3, kernel=kernel).item()
    assert chunked == pytest.approx(unchunked, rel=1e-13, abs=1e-15)
    assert chunked == pytest.approx(BRUTE[kernel](*data, 1.3), rel=1e-11, abs=1e-14)


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
def test_gradients_finite(kernel):
    data = [x.clone() for x in _data(7)]
    for x in data[:4]:
        x.requires_grad_(True)
    representativeness(*data, bandwidth=0.8, kernel=kernel).backward()
    for x in data[:4]:
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
@pytest.mark.parametrize("weights", ["normalised", "as_given"])
def test_gradcheck(kernel, weights):
    tf, tl, vf, vl, vy = _data(8, s=4, t=3, d=2, c=3)
    for x in (tf, tl, vf, vl):
        x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c_, d_: representativeness(
        a, b, c_, d_, vy, bandwidth=0.9, kernel=kernel, weights=weights, sample_weight=0.5), (tf, tl, vf, vl))


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
@pytest.mark.parametrize("num_train", [7, 30])  # 30 > 25 rows: torch.cdist may take its matmul path
def test_gradients_finite_at_coincident_points(kernel, num_train):
    tf, tl, vf, vl, vy = _data(9, s=num_train)
    vf = vf.clone()
    vf[0] = tf[2]
    vf[3] = tf[num_train - 1]
    tf.requires_grad_(True)
    vf.requires_grad_(True)
    value = representativeness(tf, tl, vf, vl, vy, bandwidth=0.6, kernel=kernel)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(tf.grad).all() and torch.isfinite(vf.grad).all()
    assert tf.grad.abs().sum() > 0 and vf.grad.abs().sum() > 0
    # and the value itself matches the brute force at the coincidence
    data = (tf.detach(), tl, vf.detach(), vl, vy)
    assert value.item() == pytest.approx(BRUTE[kernel](*data, 0.6), rel=1e-11, abs=1e-14)


@pytest.mark.parametrize("kernel", ["petzka", "gaussian"])
def test_float32_float64(kernel):
    data64 = _data(10)
    data32 = [x.float() if x.dtype.is_floating_point else x for x in data64]
    v64 = representativeness(*data64, bandwidth=1.1, kernel=kernel)
    v32 = representativeness(*data32, bandwidth=1.1, kernel=kernel)
    assert v64.dtype == torch.float64 and v32.dtype == torch.float32
    assert v32.dim() == 0
    assert v32.item() == pytest.approx(v64.item(), rel=1e-5, abs=1e-6)


def test_invalid_arguments():
    data = _data(11)
    with pytest.raises(ValueError):
        representativeness(*data, kernel="laplace")
    with pytest.raises(ValueError):
        representativeness(*data, weights="renormalised")
    with pytest.raises(ValueError):
        representativeness_terms(*data, weights=())
    with pytest.raises(ValueError):
        representativeness(*data, bandwidth=0.0)
    with pytest.raises(ValueError):
        representativeness(*data, bandwidth=-1.0)
    tf, tl, vf, vl, vy = data
    with pytest.raises(ValueError):
        representativeness(tf, tl[:-1], vf, vl, vy)
    with pytest.raises(ValueError):
        representativeness(tf, tl, vf, vl[:-1], vy)


@pytest.mark.parametrize("elements", [1, 14, 2**20])
def test_kernels_together_equal_brute_force(monkeypatch, elements):
    """Both kernels from one call (shared distances, label-ordered chunks that each read only their own labels'
    loss columns) equal the brute-force loops, for chunks of one row, of a few rows and of all rows."""
    data = _data(9, t=11, c=5)
    monkeypatch.setattr(rep_module, "_KERNEL_ELEMENTS", elements)
    terms = representativeness_terms(*data, bandwidth=0.9, kernel=("petzka", "gaussian"),
                                     weights=("normalised", "as_given"), sample_weight=0.3)
    assert set(terms) == {"val_loss", "kde_petzka_normalised", "kde_petzka_as_given", "kde_gaussian_normalised",
                          "kde_gaussian_as_given"}
    for kernel in ("petzka", "gaussian"):
        rep = terms["val_loss"] - terms[f"kde_{kernel}_normalised"]
        assert rep.item() == pytest.approx(BRUTE[kernel](*data, 0.9), rel=1e-11, abs=1e-14)
        alone = representativeness_terms(*data, bandwidth=0.9, kernel=kernel, weights=("as_given",), sample_weight=0.3)
        assert terms[f"kde_{kernel}_as_given"].item() == pytest.approx(alone["kde_as_given"].item(), rel=1e-12)
    with pytest.raises(ValueError, match="kernel"):
        representativeness_terms(*data, kernel=("petzka", "laplace"))


def test_progress_bar_changes_no_value(capsys):
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(300, 8, generator=g), torch.randn(300, 5, generator=g), torch.randn(200, 8, generator=g),
            torch.randn(200, 5, generator=g), torch.randint(0, 5, (200,), generator=g))
    quiet = representativeness_terms(*args, kernel=("petzka", "gaussian"))
    shown = representativeness_terms(*args, kernel=("petzka", "gaussian"), progress=True)
    assert quiet.keys() == shown.keys() and all(torch.equal(quiet[k], shown[k]) for k in quiet)
    assert "KDE chunks" in capsys.readouterr().err


@pytest.mark.parametrize("elements", [14, 2**20])
def test_in_place_path_without_a_graph_changes_no_bit(monkeypatch, elements):
    """Under torch.no_grad (or with inputs that need no gradient) the kernel blocks are worked on in place; the
    terms are the same bits as with a graph, for both kernels and both weightings, and they still match the
    brute-force loops."""
    monkeypatch.setattr(rep_module, "_KERNEL_ELEMENTS", elements)
    data = _data(4, s=40, t=23, d=6, c=5, dtype=torch.float32)
    kwargs = dict(bandwidth=0.8, kernel=("petzka", "gaussian"), weights=("normalised", "as_given"), sample_weight=0.3)
    with torch.no_grad():
        quick = representativeness_terms(*data, **kwargs)
    graph = representativeness_terms(*[t.requires_grad_(t.is_floating_point()) for t in data], **kwargs)
    assert graph["kde_gaussian_normalised"].requires_grad and not quick["kde_gaussian_normalised"].requires_grad
    assert quick.keys() == graph.keys() and all(torch.equal(quick[k], graph[k].detach()) for k in quick)
    data64 = [t.detach().double() if t.is_floating_point() else t for t in data]
    with torch.no_grad():
        terms = representativeness_terms(*data64, **kwargs)
    for kernel in ("petzka", "gaussian"):
        rep = terms["val_loss"] - terms[f"kde_{kernel}_normalised"]
        assert rep.item() == pytest.approx(BRUTE[kernel](*data64, 0.8), rel=1e-11, abs=1e-14)
