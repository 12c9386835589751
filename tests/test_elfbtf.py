"""BTF header parsing and ELF facts on a small object built here."""

import struct
import subprocess
from pathlib import Path

import pytest

from harness.btf import elfbtf


def header(magic: int = 0xEB9F, tlen: int = 24, slen: int = 16) -> bytes:
    """A BTF blob: its header and a body of the sizes it says."""
    return struct.pack("<HBBIIIII", magic, 1, 0, 24, 0, tlen, tlen, slen) + bytes(tlen + slen)


def test_parse_btf_header() -> None:
    h = elfbtf.parse_btf_header(header())
    assert (h.magic, h.version, h.type_len, h.str_len) == (0xEB9F, 1, 24, 16)


def test_body_shorter_than_the_header_says() -> None:
    with pytest.raises(elfbtf.MalformedBtf, match="truncated: its header says types at 0"):
        elfbtf.parse_btf_header(header()[:30])


def test_bad_magic() -> None:
    with pytest.raises(ValueError, match="bad BTF magic"):
        elfbtf.parse_btf_header(header(magic=0x1234))


def test_elf_facts_reads_sections_and_vermagic(tmp_path: Path) -> None:
    src = tmp_path / "m.c"
    src.write_text(
        '__attribute__((section(".modinfo"))) const char v[] = "vermagic=6.12.117 mod_unload";\n'
    )
    (tmp_path / "btf.bin").write_bytes(header() + bytes(40))
    obj = tmp_path / "m.o"
    subprocess.run(["gcc", "-c", str(src), "-o", str(obj)], check=True)
    subprocess.run(["objcopy", "--add-section", f".BTF={tmp_path / 'btf.bin'}", str(obj)],
                   check=True)
    facts = elfbtf.elf_facts(obj)
    assert ".BTF" in facts.sections and ".modinfo" in facts.sections
    assert facts.vermagic == "6.12.117 mod_unload"
    assert facts.btf is not None and facts.btf.type_len == 24
    assert facts.btf_base is None


def test_module_type_counts_of_a_distilled_module() -> None:
    """Captured: kbtf_types.ko (pahole 1.30, 6.12.117), debug info stripped. Its .BTF is
    split on top of its own .BTF.base, so no vmlinux is read."""
    ko = Path(__file__).parent / "data/kbtf_types-distilled.ko"
    assert elfbtf.module_type_counts(ko, Path("/nonexistent/vmlinux")) == (16, 10)
