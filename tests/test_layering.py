"""Layering: training imports only what a training job needs, so a job starts fast and the config machinery
(YAML, JSON schema) and the plotting code stay out of it."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_train_imports_no_config_or_figures():
    banned = ("rnngrad.figures", "rnngrad.config", "jsonschema", "yaml", "matplotlib", "seaborn")
    code = (
        "import sys, rnngrad.train\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {banned!r} or m in {banned!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
