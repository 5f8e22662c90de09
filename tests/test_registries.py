"""The config schema's enums and the registries they name cannot drift apart: a task, variant, activation,
initialisation, model or optimizer added to the code must be added to the schema too, and the reverse."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

from rnngrad import models, optim, tasks

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
GRID = SCHEMA["$defs"]["grid_block"]["properties"]


@pytest.mark.parametrize(
    ("enum", "registry"),
    [
        (GRID["task"]["items"]["enum"], tasks.TASKS),
        (GRID["activation"]["items"]["enum"], models.ACTIVATIONS),
        (GRID["init"]["items"]["enum"], models.INITS),
        (GRID["model"]["anyOf"][0]["enum"], models.MODELS),
        (SCHEMA["$defs"]["train"]["properties"]["optimizer"]["enum"], optim.OPTIMIZERS),
    ],
    ids=["task", "activation", "init", "model", "optimizer"],
)
def test_schema_enum_is_the_registry(enum, registry):
    assert sorted(enum) == sorted(registry)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_schema_task_section_is_the_task_module(task):
    """tasks.<task> holds exactly the variant, the task's own parameters and its success threshold."""
    section = SCHEMA["properties"]["tasks"]["properties"][task]
    module = tasks.get(task)
    assert sorted(section["properties"]["variant"]["enum"]) == sorted(module.VARIANTS)
    assert set(section["properties"]) == {"variant", module.SUCCESS_KEY, *module.PARAMS}
    assert set(section["required"]) == set(section["properties"])


def test_schema_has_a_section_for_every_task_and_no_other():
    assert sorted(SCHEMA["properties"]["tasks"]["properties"]) == sorted(tasks.TASKS)
