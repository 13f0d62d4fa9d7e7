"""The backends every parametrized zpool test runs on."""

from __future__ import annotations

#: Every backend, with the zsmalloc variants that change behaviour (v5.x, v6.3 and v6.15).
BACKENDS: dict[str, tuple[str, dict[str, object]]] = {
    "zsmalloc": ("zsmalloc", {}),
    "zsmalloc-v6.3": ("zsmalloc", {"chain_size": 8, "fullness": "ratio"}),
    "zsmalloc-v6.15": ("zsmalloc", {"sleepable_reads": True}),
    "zbud": ("zbud", {}),
    "z3fold": ("z3fold", {}),
}
