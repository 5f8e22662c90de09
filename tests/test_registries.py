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
        (SCHEMA["$defs"]["model_name"]["anyOf"][0]["enum"], models.MODELS),
        (SCHEMA["$defs"]["train"]["properties"]["optimizer"]["enum"], optim.OPTIMIZERS),
    ],
    ids=["task", "activation", "init", "model", "optimizer"],
)
def test_schema_enum_is_the_registry(enum, registry):
    assert sorted(enum) == sorted(registry)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_schema_task_section_is_the_task_module(task):
    """tasks.<task> holds exactly the variant, the task's own parameters, its success threshold and the optional
    success criterion (with the error rules where the task has the papers' rules), all required but those."""
    section = SCHEMA["properties"]["tasks"]["properties"][task]
    module = tasks.get(task)
    assert sorted(section["properties"]["variant"]["enum"]) == sorted(module.VARIANTS)
    optional = {"criterion", "max_errors"} | ({"error_rule"} if hasattr(module, "ERROR_RULES") else set())
    assert set(section["properties"]) == {"variant", module.SUCCESS_KEY, *module.PARAMS} | optional
    assert set(section["required"]) == set(section["properties"]) - optional
    if hasattr(module, "ERROR_RULES"):
        assert sorted(section["properties"]["error_rule"]["enum"]) == sorted(module.ERROR_RULES)
    assert SCHEMA["$defs"]["criterion"]["enum"] == list(tasks.CRITERIA)


def test_schema_has_a_section_for_every_task_and_no_other():
    assert sorted(SCHEMA["properties"]["tasks"]["properties"]) == sorted(tasks.TASKS)
