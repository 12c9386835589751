"""A module whose .BTF is not BTF is the product's failure (FAILED, quoting what is wrong),
never a harness ERROR: checked on a captured module with its .BTF replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import proc
from harness.btf.elfbtf import section_data
from harness.errors import BuildFailure
from harness.run.pointrun import module_record

KO = Path(__file__).parent / "data" / "kbtf_types-distilled.ko"


def with_btf(tmp_path: Path, data: bytes) -> Path:
    """A copy of the captured module whose .BTF section holds ``data``."""
    blob, ko = tmp_path / "btf.bin", tmp_path / "kbtf_types.ko"
    blob.write_bytes(data)
    proc.run(["objcopy", "--update-section", f".BTF={blob}", KO, ko], timeout=60)
    return ko


def test_the_captured_module_reads(tmp_path: Path) -> None:
    record = module_record(KO, KO, tmp_path / "build.log")  # its own .BTF.base is the base
    assert record["btf_types"] and record["btf_base_types"]


@pytest.mark.parametrize(("name", "make", "says"), [
    ("random bytes", lambda good: os.urandom(len(good)), "bad BTF magic"),
    ("short section", lambda good: good[:10], "truncated: 10 bytes"),
    ("cut after the header", lambda good: good[:200], "truncated: its header says"),
    ("good header, garbage body", lambda good: good[:24] + b"\xff" * (len(good) - 24),
     "bpftool cannot read its BTF"),
])
def test_malformed_module_btf_is_a_build_failure(tmp_path: Path, name: str, make, says: str  # type: ignore[no-untyped-def]
                                                 ) -> None:
    good = section_data(KO, ".BTF")
    assert good is not None
    ko = with_btf(tmp_path, make(good))
    with pytest.raises(BuildFailure, match=says) as err:
        module_record(ko, KO, tmp_path / "build.log")
    assert err.value.log == tmp_path / "build.log" and "kbtf_types.ko" in str(err.value)


def test_corrupt_btf_sabotage_makes_types_overlap_strings(tmp_path: Path) -> None:
    """--sabotage corrupt-btf: the .BTF header's type section overlaps its strings (the
    kernel's btf_check_sec_info refuses it: "Section overlap found"); a hard link to the
    module keeps the original."""
    import shutil
    import struct

    from harness.btf.elfbtf import overlap_btf_sections

    ko = tmp_path / "kbtf_types.ko"
    shutil.copy(Path(__file__).parent / "data/kbtf_types-distilled.ko", ko)
    os.link(ko, tmp_path / "kept.ko")
    overlap_btf_sections(ko)

    def sections(path: Path) -> tuple[int, int, int]:
        data = section_data(path, ".BTF")
        assert data is not None
        _m, _v, _f, _h, toff, tlen, soff, _slen = struct.unpack_from("<HBBIIIII", data)
        return toff, tlen, soff

    toff, tlen, soff = sections(ko)
    assert toff + tlen == soff + 4  # 4 bytes into the strings
    toff, tlen, soff = sections(tmp_path / "kept.ko")
    assert toff + tlen <= soff
