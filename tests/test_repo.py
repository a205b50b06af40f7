"""The repository's promises: CI runs the README's test command verbatim; the public API exists."""

from pathlib import Path

import common

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci_commands = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
                   if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert len(ci_commands) == 1
    readme = (REPO / "README.md").read_text()
    assert ci_commands[0] in readme.splitlines()


def test_public_api_is_exported_with_docstrings():
    names = ["ncc", "relative_flatness_bound", "relative_flatness_exact", "neural_collapse",
             "class_mean_angles", "simplex_angle", "representativeness", "prop52_bound",
             "capture_features", "RunLog", "load_runs", "save_checkpoint", "load_checkpoint",
             "seed_everything", "log_grid_epochs", "log_spaced_steps", "fail", "UsageError"]
    for name in names:
        assert name in common.__all__
        assert getattr(common, name).__doc__, name


def test_no_machine_paths_in_tracked_text():
    for path in REPO.rglob("*"):
        if {".venv", ".git", "runs"} & set(path.parts) or not path.is_file():
            continue
        if path.suffix in {".py", ".md", ".sh", ".txt", ".ini", ".toml", ".ipynb"} or path.name == "run":
            text = path.read_text(errors="ignore")
            for marker in ("/" + "work/", "/" + "root/", "/" + "farm/"):
                assert marker not in text, f"{path} names a machine path {marker}"


def test_committed_run_logs_name_no_absolute_path():
    """config.json files under */figures/ record paths relative to the repository or as placeholders
    (common.plumbing.config.repo_relative): a committed log names no folder of the machine it ran on."""
    import json

    records = sorted(REPO.glob("*/figures/**/config.json"))
    assert len(records) >= 3
    for path in records:
        record = json.loads(path.read_text())
        words = [str(w) for w in record["argv"]] + [str(v) for v in record["config"].values()]
        absolute = [w for w in words if w.startswith("/") or "=/" in w]
        assert not absolute, f"{path.relative_to(REPO)} records {absolute}"


def test_pyproject_installs_common_with_its_version():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["version"] == common.__version__
    packages = {".".join(("flatness_nc",) + p.relative_to(REPO / "common").parent.parts)
                for p in (REPO / "common").rglob("__init__.py")}  # the folder common/ installs as flatness_nc
    assert set(project["tool"]["setuptools"]["packages"]) == packages
    assert project["tool"]["setuptools"]["package-dir"] == {"flatness_nc": "common"}
    files = ("requirements.txt", "requirements-text.txt", "requirements-trackers.txt")
    core = {line.split(">")[0].split("<")[0] for name in files
            for line in (REPO / name).read_text().splitlines() if line and not line.startswith(("#", "-r"))}
    named = {d.split(">")[0].split("<")[0] for d in project["project"]["dependencies"]}
    extras = {d.split(">")[0].split("<")[0] for ds in project["project"]["optional-dependencies"].values() for d in ds}
    assert named | extras == core  # the same packages as the experiments' requirements, split into extras


def test_import_common_needs_only_torch_and_numpy():
    import subprocess
    import sys

    code = ("import sys, common; heavy = [m for m in ('pandas', 'matplotlib', 'torchvision', 'scipy', 'transformers', "
            "'datasets') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_every_image_a_document_shows_is_committed_and_redrawn():
    """Each image linked from a README or REPRODUCTION.md exists; one under an experiment's figures/ lies where
    a FIGURES command of its report.py writes (a group's figures/ folder, or its --to folder), so that
    `python -m common.report` redraws what readers see, not a stale copy."""
    import importlib
    import re

    documents = [REPO / "README.md", REPO / "REPRODUCTION.md", *sorted(REPO.glob("*/README.md"))]
    for document in documents:
        for link in re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", document.read_text()):
            image = (document.parent / link).resolve()
            assert image.is_file(), f"{document.relative_to(REPO)} shows {link}, which does not exist"
            where = image.relative_to(REPO)
            if where.parts[1:2] != ("figures",):
                continue
            commands = importlib.import_module(f"{where.parts[0]}.report").FIGURES
            outputs = set()
            for command in commands:
                if "--to" in command:
                    outputs.add(command[command.index("--to") + 1])
                if "--compare" in command:  # grokking_nc_rf.plot --compare GROUPS --out FOLDER
                    outputs.add(command[command.index("--out") + 1])
                if "--run_group" in command:
                    outputs.add(command[command.index("--run_group") + 1] + "/figures")
                if "--out_dir" in command and "--to" not in command:  # nc_experiments.plot: <out_dir>/<exp>/figures/<preset>
                    outputs.add(f"{command[command.index('--out_dir') + 1]}/{where.parts[0]}/figures/cpu")
            assert where.parent.as_posix() in outputs, f"{document.relative_to(REPO)} shows {link}, which no FIGURES command of {where.parts[0]}/report.py redraws (they write {sorted(outputs)})"
