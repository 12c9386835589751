"""The dedup check on captured data: kbtf_types.ko as pahole 1.30 built it for 6.12
(x86_64, with .BTF.base, debug info stripped) has no duplicate; the same module with one
type record of its .BTF copied fails the check. The host's bpftool reads the sections, as
in the suites."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from harness.btf.btfdedup import duplicates
from harness.btf.elfbtf import module_btf, section_data

KO = Path(__file__).parent / "data" / "kbtf_types-distilled.ko"
NO_VMLINUX = Path("/nonexistent/vmlinux")  # the module has .BTF.base: vmlinux is not read
BTF_KIND_TYPEDEF = 8


def with_duplicated_typedef(btf: bytes, base: bytes, name: str, target: int) -> bytes:
    """Raw split BTF with one more TYPEDEF record named ``name`` -> ``target`` appended to
    its type section (the header's type_len and str_off moved past it). Split BTF string
    offsets continue after the base's strings."""
    base_str_len = struct.unpack_from("<I", base, 20)[0]
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", btf)
    strings = btf[hdr_len + str_off: hdr_len + str_off + str_len]
    name_off = base_str_len + strings.index(b"\0" + name.encode() + b"\0") + 1
    record = struct.pack("<III", name_off, BTF_KIND_TYPEDEF << 24, target)
    end = hdr_len + type_off + type_len
    header = struct.pack("<HBBIIIII", magic, version, flags, hdr_len, type_off,
                         type_len + len(record), str_off + len(record), str_len)
    return header + btf[24:end] + record + btf[end:]


def test_captured_module_has_no_duplicates() -> None:
    split, base = module_btf(KO, NO_VMLINUX)
    assert split and base
    assert duplicates(split, base) == []


def test_module_with_one_duplicated_type_fails(tmp_path: Path) -> None:
    split, _ = module_btf(KO, NO_VMLINUX)
    typedef = next(t for t in split if t["kind"] == "TYPEDEF")
    btf, base = section_data(KO, ".BTF"), section_data(KO, ".BTF.base")
    assert btf is not None and base is not None
    raw = tmp_path / "dup.btf"
    target = int(str(typedef["type_id"]))
    raw.write_bytes(with_duplicated_typedef(btf, base, str(typedef["name"]), target))
    ko = tmp_path / "kbtf_types.ko"
    shutil.copy(KO, ko)
    subprocess.run(["objcopy", "--update-section", f".BTF={raw}", str(ko)], check=True)
    found = duplicates(*module_btf(ko, NO_VMLINUX))
    assert len(found) == 1 and len(found[0].ids) == 2, found
    assert found[0].describe().startswith(f"TYPEDEF '{typedef['name']}'")


def test_anonymous_types_compare_by_structure() -> None:
    base = [{"id": 1, "kind": "INT", "name": "int", "size": 4, "bits_offset": 0,
             "nr_bits": 32, "encoding": "SIGNED"}]
    split = [{"id": 2, "kind": "PTR", "name": "(anon)", "type_id": 1},
             {"id": 3, "kind": "PTR", "name": "(anon)", "type_id": 1},
             {"id": 4, "kind": "CONST", "name": "(anon)", "type_id": 2},
             {"id": 5, "kind": "CONST", "name": "(anon)", "type_id": 3},
             {"id": 6, "kind": "VAR", "name": "x", "type_id": 1, "linkage": "static"},
             {"id": 7, "kind": "VAR", "name": "x", "type_id": 1, "linkage": "static"}]
    found = duplicates(split, base)
    assert [d.ids for d in found] == [(2, 3), (4, 5)]  # VARs are not deduplicated


def test_duplicates_are_attributed_to_who_made_them() -> None:
    from harness.btf.btfdedup import BY_PAHOLE, BY_TREE, Duplicate, attribute

    proto = Duplicate((182, 218), "FUNC_PROTO", "(anon)", " -> INT 'int'")
    arg_proto = Duplicate((216, 304), "FUNC_PROTO", "(anon)", " -> INT 'int'")
    typedef = Duplicate((10, 31), "TYPEDEF", "__u64", " -> INT 'long long unsigned int'")
    # 7.2's bpf_testmod: pahole's output had no FUNC_PROTO twice; resolve_btfids added them.
    assert [by for _, by in attribute([proto, arg_proto], [])] == [BY_TREE, BY_TREE]
    # pahole's own duplicate stays pahole's; one more copy than pahole made is the tree's.
    assert attribute([typedef], [typedef]) == [(typedef, BY_PAHOLE)]
    assert [by for _, by in attribute([proto, arg_proto], [proto])] == [BY_PAHOLE, BY_TREE]
