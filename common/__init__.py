"""The shared measurement library of the paper "Flatness is Necessary, Neural Collapse is Not".

Metrics (tensors in, 0-dim tensor out, differentiable, device/dtype follow the inputs):
    ncc                       Def. 3.1, neural-collapse clustering
    relative_flatness_bound   Lemma A.2 upper bound ||W||_F^2 Tr H (what the paper plots)
    relative_flatness_exact   Def. 3.2, exact, in closed form
    neural_collapse           NC1-NC4 (Papyan et al. 2020), a dict
    class_variances           within- and between-class variance and their ratio (Sakamoto et al. 2025), a dict
    class_mean_angles         Fig. 3, (C, C) degrees; simplex_angle(k) the NC2 target
    representativeness        App. D, KDE representativeness (Fig. 8)
    representativeness_terms  its two terms: validation loss and KDE term, per weighting of App. D
    prop52_bound              Prop. 5.2's right-hand side (a float)
    powerlaw_fit, layer_alphas   HTSR alpha (Martin & Mahoney): power-law exponent of a layer's spectrum
    rf_regulariser            Eq. (1)'s term as the rf_* experiments apply it (temperature, normalised features)
    cap_weight_, Unplug       the classifier's norm cap and the unplug schedule (App. C and the released scripts)

Plumbing every experiment shares:
    capture_features          forward pre-hook on the classifier: its input features
    RunLog, load_runs         run directory writer (config.json, metrics.jsonl, checkpoints) and reader
    save_checkpoint, load_checkpoint, CheckpointError   atomic checkpoints
    seed_everything           seeding
    log_grid_epochs, log_spaced_steps   evaluation schedules
    ArgumentParser, UsageError, fail, entry_point       one-line CLI errors, exit code 2; Diverged, exit 1
    Key, parse, with_defaults, Run, command_line, epoch_generator   every train.py's command line, run folder
    seed_band, markdown_table                           plot and benchmark helpers (plumbing.tables)

The names above are the public face; they live in layers (docs/layers.md), each importing only from below:
    common.measures    the science: the metrics above (torch alone)
    common.plumbing    command line, config, run log, checkpoints, seeding, schedules, torchrun, loop steps
    common.images, common.text   the data families: models, data, batches, flags
    common.unplug      the rf_* family: regulariser, unplug schedule, its loop and figure
    common.analysis, common.plot, common.report   on top: onsets, figures and tables from run logs
Installed with pip, this package is `flatness_nc` (import flatness_nc as fn); in a clone it is `common`.
"""

__version__ = "0.1.0"  # pyproject.toml has the same (tests/test_repo.py)

from .plumbing.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .plumbing.cli import ArgumentParser, Diverged, UsageError, entry_point, fail
from .plumbing.config import NON_NEGATIVE, POSITIVE, Key, Run, command_line, epoch_generator, parse, with_defaults
from .measures.htsr import layer_alphas, powerlaw_fit, spectrum
from .measures.features import FeatureCapture, capture_features
from .plumbing.tables import markdown_table, seed_band
from .measures.neural_collapse import (class_mean_angles, class_statistics, class_variances, ncc, neural_collapse,
                                       simplex_angle)
from .unplug.regularisation import Unplug, cap_weight_, rf_regulariser
from .measures.relative_flatness import prop52_bound, relative_flatness_bound, relative_flatness_exact
from .measures.representativeness import representativeness, representativeness_terms
from .plumbing.runlog import RunLog, git_commit, load_runs, read_metrics
from .plumbing.schedules import log_grid_epochs, log_spaced_steps
from .plumbing.seeding import get_rng_state, seed_everything, set_rng_state

__all__ = [
    "ncc", "relative_flatness_bound", "relative_flatness_exact", "neural_collapse", "class_variances",
    "class_mean_angles",
    "simplex_angle", "representativeness", "representativeness_terms", "prop52_bound", "class_statistics",
    "rf_regulariser", "cap_weight_", "Unplug", "powerlaw_fit", "layer_alphas", "spectrum",
    "capture_features", "FeatureCapture",
    "RunLog", "load_runs", "read_metrics", "git_commit",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
    "seed_everything", "get_rng_state", "set_rng_state",
    "log_grid_epochs", "log_spaced_steps",
    "ArgumentParser", "UsageError", "Diverged", "fail", "entry_point",
    "Key", "Run", "parse", "with_defaults", "command_line", "epoch_generator", "POSITIVE", "NON_NEGATIVE",
    "seed_band", "markdown_table",
]
