"""Facts about a .ko or vmlinux: ELF sections (pyelftools), BTF header, bpftool's JSON."""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness import proc

BTF_MAGIC = 0xEB9F


@dataclass(frozen=True)
class BtfHeader:
    """The fixed part of a BTF blob (include/uapi/linux/btf.h)."""

    magic: int
    version: int
    type_len: int
    str_len: int


@dataclass(frozen=True)
class ElfFacts:
    """What the harness checks in an ELF file."""

    path: Path
    sections: tuple[str, ...]
    vermagic: str  # from .modinfo, empty for vmlinux
    btf: BtfHeader | None  # .BTF
    btf_base: BtfHeader | None  # .BTF.base (distilled base)


def parse_btf_header(data: bytes) -> BtfHeader:
    """Parse the header of a BTF blob. Raises ValueError if the magic is wrong."""
    magic, version, _flags, _hdr_len, _toff, tlen, _soff, slen = struct.unpack_from(
        "<HBBIIIII", data
    )
    if magic != BTF_MAGIC:
        magic, version, _flags, _hdr_len, _toff, tlen, _soff, slen = struct.unpack_from(
            ">HBBIIIII", data
        )
    if magic != BTF_MAGIC:
        raise ValueError(f"bad BTF magic {magic:#x}")
    return BtfHeader(magic, version, tlen, slen)


def elf_facts(path: Path) -> ElfFacts:
    """Read sections, vermagic and BTF headers of ``path`` with pyelftools."""
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        names = tuple(s.name for s in elf.iter_sections())
        vermagic = ""
        modinfo = elf.get_section_by_name(".modinfo")
        if modinfo is not None:
            for entry in modinfo.data().split(b"\0"):
                if entry.startswith(b"vermagic="):
                    vermagic = entry.split(b"=", 1)[1].decode()
        btf = elf.get_section_by_name(".BTF")
        base = elf.get_section_by_name(".BTF.base")
        return ElfFacts(
            path,
            names,
            vermagic,
            parse_btf_header(btf.data()) if btf is not None else None,
            parse_btf_header(base.data()) if base is not None else None,
        )


@functools.cache
def vmlinux_types(vmlinux: Path) -> list[dict[str, object]]:
    """``btf_types`` of a vmlinux, dumped once per process (cached builds never change)."""
    return btf_types(vmlinux)


def btf_types(path: Path, base: Path | None = None) -> list[dict[str, object]]:
    """The BTF types of ``path`` as bpftool's JSON (``bpftool -j btf dump file``).

    For split BTF pass the ``base`` (vmlinux). Raises BuildError if bpftool fails.
    """
    argv = [proc.require_tool("bpftool"), "-j"]
    if base is not None:
        argv += ["--base-btf", str(base)]
    argv += ["btf", "dump", "file", str(path)]
    out = proc.run(argv)
    types: list[dict[str, object]] = json.loads(out.stdout)["types"]
    return types
