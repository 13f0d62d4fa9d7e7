"""``python -m acomp``: ``--version`` and ``list --json``."""

from __future__ import annotations

import json

import pytest

import acomp
from acomp.__main__ import LIST_SCHEMA, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"acomp {acomp.__version__}"


def test_list_json_is_data_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # nothing but the document on stdout
    assert doc["schema"] == LIST_SCHEMA
    drivers = {a["driver"]: a for a in doc["algorithms"]}
    lz4 = drivers["lz4-scomp"]
    assert (lz4["name"], lz4["priority"], lz4["async"], lz4["selftest"]) == ("lz4", 0, False,
                                                                            "passed")
    assert lz4["priority_reason"]
    mods = {m["module"]: m for m in doc["modules"]}
    assert mods["lz4"]["state"] == "live"
    assert "lz4-scomp" in mods["lz4"]["algorithms"]


def test_list_prints_priorities(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "driver       : lz4-scomp" in out  # /proc/crypto first
    assert "priorities" in out
    assert "lz4-scomp" in out.split("priorities", 1)[1]
