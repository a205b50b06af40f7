"""The rf_* family (rf_resnet18, rf_vit, rf_bert, rf_gpt2, Figs. 4 and 16-19): relative-flatness
regularisation with "unplug" (§6, App. C), one training loop for every model and data family, and the figure.

    rf_regulariser, cap_weight_, Unplug, RF_KEYS, RF_RULES   the regulariser, the norm cap and the schedule (regularisation)
    UnplugTask, image_task, text_task   what the loop needs of a model on its data (tasks)
    train_with_unplug, unplug_training  the loop: one row per epoch, resumable, under torchrun too (loop)
    unplug_figure, plot_unplug_runs, figure_from_runs   the figure and summary of a family's runs (figure;
                                        imports matplotlib)

    sh common/unplug/run_figure.sh EXPERIMENT [train.py flags]   the runs of a figure and the figure

The names are loaded on first use, so `import common.unplug` imports neither torchvision, transformers nor
matplotlib.
"""

from importlib import import_module

_WHERE = {"rf_regulariser": "regularisation", "cap_weight_": "regularisation", "Unplug": "regularisation",
          "RF_KEYS": "regularisation", "RF_RULES": "regularisation", "unplug_from_config": "regularisation",
          "rf_terms": "regularisation",
          "UnplugTask": "tasks", "image_task": "tasks", "text_task": "tasks",
          "train_with_unplug": "loop", "unplug_training": "loop",
          "GROUPS": "figure", "unplug_figure": "figure", "unplug_summary": "figure", "unplug_numbers": "figure",
          "search_table": "figure", "figure_from_runs": "figure", "plot_unplug_runs": "figure"}
__all__ = list(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
