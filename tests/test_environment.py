"""The conda environment, the pip pins and the lock file name the same versions; torch is pinned exactly."""

from __future__ import annotations

import re
import tomllib

import yaml
from conftest import ROOT

CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["dev"] + extras["slurm"]
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)", requirement)
        assert match, f"pyproject.toml: {requirement!r} is not an exact == pin"
        pins[match.group(1).lower()] = match.group(3)
    return pins


def conda_pins() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge", "nodefaults"]
    pins = {}
    for dependency in environment["dependencies"]:
        if isinstance(dependency, str) and "=" in dependency:
            name, version = dependency.split("=", 1)
            pins[name.lower()] = version
    return pins


def test_every_pip_pin_has_the_same_version_in_environment_yml():
    conda = conda_pins()
    for name, version in pyproject_pins().items():
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"environment.yml lacks {conda_name} (pyproject pins {name}=={version})"
        assert conda[conda_name] == version, f"{name}: pyproject {version} != environment.yml {conda[conda_name]}"
    assert conda["python"] == "3.11"


def test_lock_file_agrees_with_pyproject_and_pins_torch_exactly():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            lock[name.lower()] = version
    for name, version in pyproject_pins().items():
        assert lock.get(name) == version, f"requirements.lock: {name} {lock.get(name)} != pyproject {version}"
    assert lock["torch"] == "2.13.0"


def test_torch_is_never_unpinned():
    for path in ("pyproject.toml", "environment.yml", "requirements.lock", "Makefile"):
        for line in (ROOT / path).read_text().splitlines():
            if re.search(r"\b(py)?torch\b", line) and not line.lstrip().startswith("#"):
                assert re.search(r"torch[=]{1,2}2\.13\.0\b", line), f"{path}: unpinned torch in {line!r}"
