"""Naming BTF types from bpftool's JSON (``bpftool -j btf dump file``).

A guest dumps only its module's split types (small, fast under TCG); their references into
vmlinux are resolved with the vmlinux types the host dumps from the same build.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

Types = Mapping[int, Mapping[str, Any]]

_TAGGED = {"STRUCT": "struct", "UNION": "union", "ENUM": "enum", "ENUM64": "enum"}
_QUALIFIERS = {"CONST": "const", "VOLATILE": "volatile", "RESTRICT": "restrict"}


def by_id(*dumps: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """One id -> type map from several dumps (e.g. vmlinux's, then a module's split types)."""
    return {int(t["id"]): t for dump in dumps for t in dump}


def type_name(types: Types, type_id: int, depth: int = 0) -> str:
    """C spelling of a type: ``struct task_struct *``, ``const char *``, ``pid_t``, ``int[4]``.

    Unknown ids (BTF for another base) read ``<unknown id N>``.
    """
    if type_id == 0:
        return "void"
    t = types.get(type_id)
    if t is None or depth > 32:
        return f"<unknown id {type_id}>"
    kind, name = t["kind"], t.get("name", "(anon)")
    if kind == "PTR":
        return f"{type_name(types, t['type_id'], depth + 1)} *"
    if kind in _QUALIFIERS:
        return f"{_QUALIFIERS[kind]} {type_name(types, t['type_id'], depth + 1)}"
    if kind == "ARRAY":
        return f"{type_name(types, t['type_id'], depth + 1)}[{t.get('nr_elems', '')}]"
    if kind == "TYPE_TAG":
        return type_name(types, t["type_id"], depth + 1)
    if kind in _TAGGED:
        return f"{_TAGGED[kind]} {name}"
    if kind == "FWD":
        return f"{t.get('fwd_kind', 'struct')} {name}"
    if kind == "FUNC_PROTO":
        return "function"
    return str(name)


def struct_members(types: Types, struct: str) -> dict[str, str] | None:
    """Member name -> C type of ``struct`` (the highest id of that name, i.e. the module's),
    or None if no struct has that name."""
    found = [t for t in types.values() if t["kind"] == "STRUCT" and t.get("name") == struct]
    if not found:
        return None
    target = max(found, key=lambda t: int(t["id"]))
    return {m["name"]: type_name(types, int(m["type_id"])) for m in target.get("members", [])}


def module_struct_members(module_json: str, vmlinux_types: Iterable[Mapping[str, Any]],
                          struct: str) -> dict[str, str] | None:
    """``struct_members`` of a module's BTF as the running kernel holds it.

    ``module_json``: stdout of ``bpftool -j btf dump file /sys/kernel/btf/<module>`` (its
    split types only); ``vmlinux_types``: the running vmlinux's types (host-side dump).
    Raises ValueError if ``module_json`` is not bpftool's JSON.
    """
    split = json.loads(module_json)["types"]
    return struct_members(by_id(vmlinux_types, split), struct)
