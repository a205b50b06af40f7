"""The house: `common/` is layered (docs/layers.md) and knows no experiment; the repository's import graph has
no circle; the public face of `common` is what it was; the installed library has its own import name.

The import graph is read from the source (ast), not from what Python happens to import, so a lazy import
inside a function counts as much as one at the top.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import common

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted(p.parent.name for p in REPO.glob("*/train.py"))
# Each folder of common/ and what it may import from common/ (itself included); modules at common/'s root
# (analysis, plot, report, the package face) form the top and may import any of them.
LAYERS = {"measures": {"measures"},
          "plumbing": {"measures", "plumbing"},
          "images": {"measures", "plumbing", "images"},
          "text": {"measures", "plumbing", "text"},
          "unplug": {"measures", "plumbing", "images", "text", "unplug"}}


def module_files():
    """{dotted module name: path} of every Python module of the repository (tests and notebooks aside)."""
    found = {}
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[0] in ("tests", "notebooks") or any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, modules) -> set[str]:
    """The repository modules `name` imports, anywhere in its code (`from . import x` counts as x)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph():
    modules = module_files()
    return {name: imports(name, path, modules) for name, path in modules.items()}


def test_the_graph_reader_sees_relative_lazy_and_package_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from .plumbing import cli\nfrom ..common import ncc\n"
                      "def f():\n    from .measures.splits import split_metrics\n    import rf_vit.train\n")
    names = {"common", "common.plumbing", "common.plumbing.cli", "common.measures.splits", "rf_vit", "rf_vit.train"}
    found = imports("common.m", module, names)
    assert found == {"common.plumbing.cli", "common", "common.measures.splits", "rf_vit.train"}


def test_no_import_circle_in_the_repository(graph):
    """Depth-first search for a back edge; the message names the circle."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_common_imports_no_experiment(graph):
    assert len(EXPERIMENTS) >= 7
    for name, targets in graph.items():
        if name.split(".")[0] == "common":
            wrong = {t for t in targets if t.split(".")[0] != "common" and t.split(".")[0] in EXPERIMENTS + ["benchmarks"]}
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_common_names_no_experiment_in_its_code():
    """No string in common/'s code (docstrings and comments aside: they may give an example) names an
    experiment folder: no hard-coded list of experiments, no path into one."""
    word = re.compile(r"\b(" + "|".join(EXPERIMENTS) + r")\b")
    for path in sorted((REPO / "common").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert not word.search(node.value), f"{path.relative_to(REPO)}:{node.lineno} names {node.value!r}"


def test_each_layer_of_common_imports_only_from_below(graph):
    for name, targets in graph.items():
        parts = name.split(".")
        if parts[0] != "common" or len(parts) < 3:
            continue  # the top: modules at common/'s root
        allowed = LAYERS[parts[1]]
        for target in targets:
            if target.split(".")[0] == "common":  # a layer's face (common.images) counts as the layer
                assert target.count(".") >= 1 and target.split(".")[1] in allowed, f"{name} imports {target}"


def test_the_measurements_need_torch_alone():
    """The science layer imports no plumbing, plotting or torch.distributed: torch, the standard library and
    tqdm (a progress bar over the KDE's chunks, on request)."""
    allowed = {"torch", "tqdm", "math", "__future__", "dataclasses", "typing", "contextlib", "collections", "functools"}
    for path in sorted((REPO / "common" / "measures").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for module in names:
                assert module.split(".")[0] in allowed and not module.startswith("torch.distributed"), \
                    f"{path.relative_to(REPO)} imports {module}"


# The public face before the layers (every name of common.__all__ at 0.1.0): it must stay.
PUBLIC = ["ncc", "relative_flatness_bound", "relative_flatness_exact", "neural_collapse", "class_mean_angles",
          "simplex_angle", "representativeness", "representativeness_terms", "prop52_bound", "class_statistics",
          "rf_regulariser", "cap_weight_", "Unplug", "powerlaw_fit", "layer_alphas", "spectrum",
          "capture_features", "FeatureCapture", "RunLog", "load_runs", "read_metrics", "git_commit",
          "save_checkpoint", "load_checkpoint", "CheckpointError", "seed_everything", "get_rng_state", "set_rng_state",
          "log_grid_epochs", "log_spaced_steps", "ArgumentParser", "UsageError", "Diverged", "fail", "entry_point",
          "Key", "Run", "parse", "with_defaults", "command_line", "epoch_generator", "POSITIVE", "NON_NEGATIVE",
          "seed_band", "markdown_table"]


def test_the_public_face_is_unchanged():
    assert set(PUBLIC) <= set(common.__all__)
    for name in PUBLIC:
        assert getattr(common, name) is not None, name
    from common import RunLog, markdown_table, ncc, relative_flatness_bound  # the documented form

    assert ncc.__module__ == "common.measures.neural_collapse" and RunLog.__module__ == "common.plumbing.runlog"
    assert relative_flatness_bound.__doc__ and markdown_table.__doc__


def test_the_installed_library_is_flatness_nc_and_imports_outside_the_repository(tmp_path):
    """`pip install .` from a copy of the repository's package files into an empty folder, then an import from
    elsewhere: the library is `flatness_nc` (no top-level `common` that would shadow a user's own)."""
    import shutil

    source = tmp_path / "source"
    shutil.copytree(REPO / "common", source / "common", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    assert (target / "flatness_nc" / "measures" / "neural_collapse.py").exists()
    assert not (target / "common").exists()
    code = ("import importlib.util, torch, flatness_nc as fn; from flatness_nc.plumbing.runlog import RunLog; "
            "x = torch.arange(36, dtype=torch.float64).reshape(12, 3).sin(); y = torch.arange(12) % 3; "
            "print(fn.__file__, fn.__version__, fn.ncc(x, y).item(), importlib.util.find_spec('common'))")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    import torch

    x = torch.arange(36, dtype=torch.float64).reshape(12, 3).sin()
    value = common.ncc(x, torch.arange(12) % 3).item()  # the same function, imported from the repository
    assert run.stdout.split() == [str(target / "flatness_nc" / "__init__.py"), common.__version__, str(value), "None"]


def test_the_layer_map_names_every_module_of_common():
    """docs/layers.md is drawn from the code: each folder of common/ and each of its modules and scripts is
    named there, and the README points to it."""
    text = (REPO / "docs" / "layers.md").read_text()
    for path in sorted((REPO / "common").rglob("*")):
        if path.suffix in (".py", ".sh") and "__pycache__" not in path.parts and path.name != "__init__.py":
            folder = path.parent.relative_to(REPO).as_posix()
            assert f"{folder}/" in text, folder
            assert re.search(rf"\b{re.escape(path.stem if path.suffix == '.py' else path.name)}\b", text), path
    assert set(LAYERS) == {p.parent.name for p in (REPO / "common").glob("*/__init__.py")}
    assert "docs/layers.md" in (REPO / "README.md").read_text()
