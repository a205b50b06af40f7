"""The science layer: the paper's measurements, tensors in and 0-dim tensors out, differentiable, on any
device. It imports torch alone (no plumbing, plotting or torch.distributed); every other layer builds on it.

    neural_collapse     NCC (Def. 3.1), NC1-NC4, class-mean angles
    relative_flatness   Def. 3.2 exact, the Lemma A.2 bound the paper plots, Prop. 5.2
    representativeness  App. D, the KDE representativeness (Fig. 8) and its terms
    htsr                HTSR alpha (Martin & Mahoney): the power-law exponent of a layer's spectrum
    features            capture_features: a classifier's input, by a forward pre-hook
    splits              split_metrics: the per-split row every image and text experiment logs

The public names are in `common` (`from common import ncc`).
"""
