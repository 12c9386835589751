"""Facts about a .ko or vmlinux: ELF sections (pyelftools), BTF header, bpftool's JSON."""

from __future__ import annotations

import contextlib
import functools
import json
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness import proc

BTF_MAGIC = 0xEB9F
BPFTOOL_TIMEOUT = 300  # a JSON dump of a vmlinux BTF takes a few seconds


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


class MalformedBtf(ValueError):
    """A BTF blob that is not BTF: bad magic, or shorter than its header says."""


_HEADER = struct.Struct("HBBIIIII")


def parse_btf_header(data: bytes) -> BtfHeader:
    """Parse the header of a BTF blob (either byte order) and check it against the blob's
    size. Raises MalformedBtf saying what is wrong."""
    if len(data) < _HEADER.size:
        raise MalformedBtf(f"truncated: {len(data)} bytes, a BTF header needs {_HEADER.size}")
    for order in "<>":
        magic, version, _flags, hdr_len, toff, tlen, soff, slen = struct.unpack_from(
            order + _HEADER.format, data)
        if magic == BTF_MAGIC:
            break
    else:
        raise MalformedBtf(f"bad BTF magic {magic:#x} (want {BTF_MAGIC:#x})")
    body = len(data) - hdr_len
    if hdr_len < _HEADER.size or body < 0 or toff + tlen > body or soff + slen > body:
        raise MalformedBtf(f"truncated: its header says types at {toff}+{tlen} and strings at "
                           f"{soff}+{slen} after a {hdr_len}-byte header, the section holds "
                           f"{len(data)} bytes")
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


def section_data(path: Path, name: str) -> bytes | None:
    """The contents of section ``name`` of ELF file ``path`` (pyelftools), or None."""
    with path.open("rb") as fh:
        section = ELFFile(fh).get_section_by_name(name)
        return section.data() if section is not None else None


@contextlib.contextmanager
def module_btf_files(ko: Path, vmlinux: Path) -> Iterator[tuple[Path | None, Path, bool]]:
    """(the module's .BTF as a raw file or None without one, the file it is split on, whether
    that is the module's own .BTF.base) for bpftool --base-btf: .BTF.base read out of the
    module (pyelftools) when it has one -- bookworm's bpftool cannot read such a module by
    itself -- else ``vmlinux``. The files live until the block ends."""
    btf = section_data(ko, ".BTF")
    base = section_data(ko, ".BTF.base")
    with tempfile.TemporaryDirectory(prefix="kbtf-btf-") as tmp:
        split_file = Path(tmp) / "btf.raw"
        if btf is not None:
            split_file.write_bytes(btf)
        base_file = vmlinux
        if base is not None:
            base_file = Path(tmp) / "btf-base.raw"
            base_file.write_bytes(base)
        yield (split_file if btf is not None else None), base_file, base is not None


def module_type_counts(ko: Path, vmlinux: Path) -> tuple[int, int]:
    """(types in .BTF, types in .BTF.base) of a module, counted from bpftool's JSON (split
    on top of .BTF.base when the module has one, else of ``vmlinux``). Raises CommandError
    if bpftool fails."""
    split, base = module_btf(ko, vmlinux)
    return len(split), len(base) if split and section_data(ko, ".BTF.base") is not None else 0


@functools.cache
def vmlinux_types(vmlinux: Path) -> list[dict[str, object]]:
    """``btf_types`` of a vmlinux, dumped once per process (cached builds never change)."""
    return btf_types(vmlinux)


def btf_types(path: Path, base: Path | None = None) -> list[dict[str, object]]:
    """The BTF types of ``path`` as bpftool's JSON (``bpftool -j btf dump file``).

    For split BTF pass the ``base`` (vmlinux). Raises CommandError if bpftool fails.
    """
    argv = [proc.require_tool("bpftool"), "-j"]
    if base is not None:
        argv += ["--base-btf", str(base)]
    argv += ["btf", "dump", "file", str(path)]
    out = proc.run(argv, timeout=BPFTOOL_TIMEOUT)
    types: list[dict[str, object]] = json.loads(out.stdout)["types"]
    return types


def module_btf(ko: Path, vmlinux: Path) -> tuple[list[dict[str, object]],
                                                  list[dict[str, object]]]:
    """(the module's own types, its base's types) from bpftool's JSON: .BTF split on top of
    .BTF.base when the module has one, else of ``vmlinux``. ([], []) without .BTF. Read
    once per process while the .ko file stays the same (several tests read each module).
    Raises CommandError if bpftool fails."""
    st = ko.stat()
    return _module_btf(ko, st.st_ino, st.st_mtime_ns, st.st_size, vmlinux)


@functools.cache
def _module_btf(ko: Path, _ino: int, _mtime_ns: int, _size: int, vmlinux: Path
                ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    with module_btf_files(ko, vmlinux) as (split, base, own_base):
        if split is None:
            return [], []
        # bpftool dumps split BTF from its first own id: only the module's types.
        return btf_types(split, base), btf_types(base) if own_base else vmlinux_types(vmlinux)


def module_functions(ko: Path, vmlinux: Path) -> set[str]:
    """Names of the FUNC types in a module's own BTF. Raises CommandError."""
    return {str(t["name"]) for t in module_btf(ko, vmlinux)[0] if t["kind"] == "FUNC"}


def overlap_btf_sections(path: Path) -> None:
    """Make ``path``'s .BTF invalid the way a broken encoder would: its header's type
    section is lengthened to overlap the string section by 4 bytes (the kernel refuses it,
    "Section overlap found"). Writes a new file (a hard link elsewhere keeps the old one).
    Raises MalformedBtf when it has no readable .BTF."""
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        section = elf.get_section_by_name(".BTF")
        if section is None:
            raise MalformedBtf(f"{path}: no .BTF section")
        offset, order = section["sh_offset"], "<" if elf.little_endian else ">"
    data = bytearray(path.read_bytes())
    fields = list(struct.unpack_from(order + _HEADER.format, data, offset))
    if fields[0] != BTF_MAGIC:
        raise MalformedBtf(f"{path}: bad BTF magic {fields[0]:#x}")
    _magic, _version, _flags, _hdr_len, type_off, _type_len, str_off, _str_len = fields
    fields[5] = str_off - type_off + 4  # type_len: 4 bytes into the strings
    struct.pack_into(order + _HEADER.format, data, offset, *fields)
    path.unlink()
    path.write_bytes(bytes(data))
