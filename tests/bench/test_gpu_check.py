"""benchmarks/gpu_check.sh, the prepared GPU check, run here on the CPU with tiny shapes so that it cannot rot
between GPU runs: every row is there and passes, and bad input is one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
ROWS = ["environment", "grokking 1 seed", "grokking 3 seeds", "grokking 8 seeds", "grokking vs CPU",
        "nc_experiments fp32", "nc_experiments amp", "rf_resnet18 fp32", "rf_resnet18 amp", "rf_vit fp32", "rf_vit amp",
        "rf_bert amp", "rf_gpt2 amp", "host syncs per step", "DDP nc_experiments", "DDP nc_experiments --sync_bn",
        "DDP rf_bert"]


def run(*args):
    return subprocess.run(["sh", "benchmarks/gpu_check.sh", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=600)


def test_gpu_check_runs_every_row_on_the_cpu_with_tiny_shapes(tmp_path):
    proc = run(str(tmp_path / "check"), "--device", "cpu", "--tiny")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    rows = {row["check"]: row for row in report["rows"]}
    assert list(rows) == ROWS
    assert all(row["ok"] for row in rows.values()), [(r["check"], r["note"]) for r in rows.values() if not r["ok"]]
    for name in ("nc_experiments fp32", "rf_vit amp", "rf_bert amp", "grokking 3 seeds"):
        assert rows[name]["rate"] > 0 and rows[name]["projected_min"] > 0, name
    assert "none per step" in rows["host syncs per step"]["note"]
    assert "gloo" in rows["DDP nc_experiments --sync_bn"]["note"]
    assert (tmp_path / "check" / "profile_nc_experiments_fp32.txt").read_text().count("\n") > 5
    table = (tmp_path / "check" / "gpu_check.md").read_text()
    assert all(f"| {name} | pass |" in table for name in ROWS)
    assert report["environment"]["torch"] == torch.__version__


def test_gpu_check_without_cuda_or_with_a_bad_device_is_one_line(tmp_path):
    if not torch.cuda.is_available():
        proc = run(str(tmp_path / "x"))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--device cpu --tiny" in proc.stderr
    proc = run(str(tmp_path / "x"), "--device", "tpu")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "gpu_check.md").write_text("an earlier run")
    proc = run(str(tmp_path / "used"), "--device", "cpu", "--tiny")
    assert proc.returncode == 2 and "not an empty folder" in proc.stderr and proc.stderr.count("\n") == 1
