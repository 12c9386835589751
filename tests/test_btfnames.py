"""btfnames: C spelling of BTF types from bpftool JSON (captured from a real module)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.btf.btfnames import by_id, module_struct_members, struct_members, type_name

DATA = json.loads((Path(__file__).parent / "data/btf-kbtf_types.json").read_text())


def test_members_of_a_split_module_resolve_through_vmlinux() -> None:
    members = module_struct_members(json.dumps({"types": DATA["module"]}), DATA["vmlinux"],
                                    "kbtf_types_state")
    assert members == {
        "task": "struct task_struct *", "skb": "struct sk_buff *", "node": "struct list_head",
        "file": "struct file *", "inode": "struct inode *", "mm": "struct mm_struct *",
        "work": "struct work_struct", "owner": "struct module *", "counter": "u64",
    }


def test_against_the_wrong_base_ids_are_unknown_or_other_types() -> None:
    # The same module read with no vmlinux: every reference into the base is unknown.
    members = struct_members(by_id(DATA["module"]), "kbtf_types_state")
    assert members is not None and members["task"] == "<unknown id 105>"


def test_missing_struct_is_none() -> None:
    assert struct_members(by_id(DATA["vmlinux"]), "kbtf_types_state") is None


def test_qualifiers_arrays_and_void() -> None:
    types = by_id([
        {"id": 1, "kind": "INT", "name": "char"},
        {"id": 2, "kind": "CONST", "name": "(anon)", "type_id": 1},
        {"id": 3, "kind": "PTR", "name": "(anon)", "type_id": 2},
        {"id": 4, "kind": "ARRAY", "name": "(anon)", "type_id": 1, "index_type_id": 1,
         "nr_elems": 16},
        {"id": 5, "kind": "PTR", "name": "(anon)", "type_id": 0},
        {"id": 6, "kind": "FWD", "name": "sock", "fwd_kind": "struct"},
        {"id": 7, "kind": "PTR", "name": "(anon)", "type_id": 7},
    ])
    assert type_name(types, 3) == "const char *"
    assert type_name(types, 4) == "char[16]"
    assert type_name(types, 5) == "void *"
    assert type_name(types, 6) == "struct sock"
    assert type_name(types, 7).startswith("<unknown id")  # a cycle ends, it does not hang
