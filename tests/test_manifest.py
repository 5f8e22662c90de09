"""The figures' manifest records content, never the commit: the same figures, tables and config give the same
bytes, and a changed table or figure module changes exactly its hash."""

from __future__ import annotations

import pandas as pd

from rnngrad import manifest
from rnngrad.io import file_sha256, read_json, write_parquet
from rnngrad.manifest import write_manifest


def build(tmp_path, out_name: str = "manifest.json") -> dict:
    tables_dir = tmp_path / "tables" / "clipping"
    if not tables_dir.exists():
        write_parquet(tables_dir / "runs.parquet", pd.DataFrame({"run_id": ["a", "b"], "code_sha256": ["c1", "c1"]}))
        write_parquet(tables_dir / "metrics.parquet", pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]}))
        for name in ("clipping", "bifurcation"):
            for ext in ("png", "pdf"):
                (tmp_path / f"{name}.{ext}").write_bytes(f"{name}.{ext}".encode())
    figures = {"clipping": "clipping", "bifurcation": None}
    return write_manifest(tmp_path / out_name, "cfg", figures, tmp_path, {"clipping": tables_dir / "runs.parquet"})


def test_manifest_is_content_only_and_reproducible(tmp_path):
    first = build(tmp_path)
    build(tmp_path, "again.json")
    assert (tmp_path / "manifest.json").read_bytes() == (tmp_path / "again.json").read_bytes()
    assert read_json(tmp_path / "manifest.json") == first
    assert "commit" not in (tmp_path / "manifest.json").read_text()
    clipping, bifurcation = first["figures"]["clipping"], first["figures"]["bifurcation"]
    tables_dir = tmp_path / "tables" / "clipping"
    assert clipping["tables_sha256"] == {
        name: file_sha256(tables_dir / f"{name}.parquet") for name in ("runs", "metrics")
    }
    assert clipping["runs_code_sha256"] == ["c1"] and clipping["png"] == file_sha256(tmp_path / "clipping.png")
    assert bifurcation["tables_sha256"] == {} and bifurcation["experiment"] is None
    assert clipping["code_sha256"] != bifurcation["code_sha256"] and first["config_sha256"] == "cfg"

    write_parquet(tables_dir / "metrics.parquet", pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.25]}))
    changed = build(tmp_path)["figures"]["clipping"]
    assert changed["tables_sha256"]["metrics"] != clipping["tables_sha256"]["metrics"]
    assert changed["tables_sha256"]["runs"] == clipping["tables_sha256"]["runs"]


def test_figure_code_hash_follows_its_module(tmp_path, monkeypatch):
    code = tmp_path / "figures"
    code.mkdir()
    for module in ("clipping.py", "common.py", "style.py"):
        (code / module).write_text(f"# {module}\n")
    monkeypatch.setattr(manifest, "FIGURES_CODE", code)
    before = manifest.figure_code_sha256("clipping")
    (code / "style.py").write_text("# a new style\n")
    assert manifest.figure_code_sha256("clipping") != before
    assert manifest.figure_code_sha256("clipping-cells") == manifest.figure_code_sha256("clipping")  # a tagged name


def test_a_tier_that_draws_no_figure_gets_a_manifest_with_none(tmp_path):
    """A budget tier may drop every figure (curves all on the baseline): the manifest still records its config."""
    import subprocess
    import sys

    out = tmp_path / "manifest.json"
    command = [sys.executable, "-m", "rnngrad", "manifest", "--config-sha256", "cfg", "--runs", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    assert read_json(out)["figures"] == {} and read_json(out)["config_sha256"] == "cfg"
