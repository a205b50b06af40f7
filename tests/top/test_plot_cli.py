"""`python -m common.plot` draws every figure family from the logs of smoke runs; the notebooks run top to
bottom on the same logs (nbclient)."""

import importlib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from common.plot import main

REPO = Path(__file__).resolve().parents[2]
QUIET = ["--threads", "1", "--no_progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_text_models):
    """Smoke runs of every experiment with a figure family: {experiment: its runs folder}."""
    import numpy as np

    from tests.conftest import write_idx, write_text_split

    root = tmp_path_factory.mktemp("runs")
    data = root / "fashion_mnist"
    data.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(data / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, size=(n, 28, 28)), True)
        write_idx(data / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, False)
    text = root / "sst"
    text.mkdir()
    write_text_split(text / "train", 40, 0)
    write_text_split(text / "validation", 20, 1)
    out = root / "out"
    image = ["--preset", "cpu", "--data_dir", str(data), "--train_size", "30", "--val_size", "20", "--batch_size", "8",
             "--width", "2"]
    flags = {
        "grokking_nc_rf": [["--preset", "cpu", "--modulus", "11", "--steps", "40", "--eval_points", "6",
                            "--batch_size", "16", "--seed", s] for s in ("1", "2")],
        "nc_experiments": [image + ["--epochs", "2", "--running_metrics", "--regularizer", r] for r in ("none", "ncc")],
        "rf_resnet18": [image + ["--epochs", "3", "--unplug_epoch", "1"] + extra
                        for extra in ([], ["--regularizer", "none", "--baseline_same_schedule"])],
        **{name: [["--preset", "cpu", "--model_name", str(tiny_text_models[model]), "--data_dir", str(text),
                   "--train_subset", "0", "--freeze_layers", "0", "--max_length", "16", "--epochs", "3", "--unplug_epoch", "1",
                   "--batch_size", "8"] + extra for extra in ([], ["--regularizer", "none", "--baseline_same_schedule"])]
           for name, model in (("rf_bert", "bert"), ("rf_gpt2", "gpt2"))},
        "anti_grokking": [["--preset", "cpu", "--data_dir", str(data), "--train_size", "40", "--val_size", "20",
                           "--steps", "30", "--eval_points", "5", "--batch_size", "8", "--width", "16",
                           "--weight_decay", wd] for wd in ("0.01", "0")],
    }
    for name, runs in flags.items():
        train = importlib.import_module(f"{name}.train")
        for f in runs:
            train.main(f + QUIET + ["--out_dir", str(out)])
    return {name: out / name for name in flags}


CASES = [("grokking_nc_rf", f) for f in ("fig1", "fig1_panels", "fig8", "fig8_kde_terms", "signals")] + \
        [("nc_experiments", f) for f in ("fig2", "fig3", "fig5", "fig6", "fig7", "signals")] + \
        [("rf_resnet18", "fig4"), ("rf_bert", "fig16"), ("rf_gpt2", "fig18"), ("anti_grokking", "anti_grokking"), ("anti_grokking", "signals")]


@pytest.mark.parametrize("experiment, figure", CASES)
def test_every_figure_from_the_logs(runs, experiment, figure, tmp_path):
    path = main([str(runs[experiment]), "--figure", figure, "--out", str(tmp_path)])
    assert path == tmp_path / f"{figure}.png" and path.stat().st_size > 20_000


def test_a_figure_of_another_experiment_is_a_one_line_error(runs, tmp_path, capsys):
    for argv, message in (([str(runs["anti_grokking"]), "--figure", "fig1"], "offer no figure fig1"),
                          ([str(tmp_path / "none"), "--figure", "fig1"], "is not a folder"),
                          ([str(tmp_path), "--figure", "fig1"], "no metrics.jsonl")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and message in err


NOTEBOOKS = {"grokking.ipynb": "grokking_nc_rf", "nc_experiments.ipynb": "nc_experiments",
             "rf_unplug.ipynb": "rf_resnet18", "rf_text.ipynb": "rf_bert", "related_signals.ipynb": "grokking_nc_rf",
             "anti_grokking.ipynb": "anti_grokking"}


def test_every_notebook_is_tested():
    assert {p.name for p in (REPO / "notebooks").glob("*.ipynb")} == set(NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_top_to_bottom_on_smoke_logs(runs, name, tmp_path):
    """The one path at the top (RUNS = ...) pointed at the smoke runs; every cell must run."""
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    first = notebook.cells[1]
    assert first.cell_type == "code" and first.source.count("RUNS = ") == 1
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "stored outputs"
    first.source = "\n".join(f"RUNS = {str(runs[NOTEBOOKS[name]])!r}" if line.startswith("RUNS = ") else line
                             for line in first.source.splitlines())
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
