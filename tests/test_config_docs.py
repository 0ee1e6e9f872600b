"""The configuration reference is generated from the code and checked in up to date."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from snakepit_actors.config import PoolConfig
from snakepit_actors.ops.config_docs import FIELD_HELP, render_reference, tradeoffs

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_pool_field_has_a_line_of_help() -> None:
    fields = {f.name for f in dataclasses.fields(PoolConfig)}
    assert fields == set(FIELD_HELP), (fields ^ set(FIELD_HELP))


def test_the_tradeoff_table_of_the_docstring_is_read_for_the_tunables() -> None:
    rows = tradeoffs()
    assert rows["pool_size"].startswith("less parallelism")
    assert rows["max_restarts"] == rows["max_seconds"]
    assert "unary ones the DataPlane" in rows["data_path"]


def test_docs_configuration_md_is_current() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/configuration.md is stale: run python scripts/gen_config_reference.py")
