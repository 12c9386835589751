"""The kernel cache key changes with every input that changes the kernel (issue 10's list)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from harness.arches import Toolchain, get_arch
from harness.builds import kbuild
from harness.plan import ksource, pahole
from harness.plan.kernelreq import KernelRequest
from harness.plan.ksource import KernelSource

TOOLS = {"gcc": "gcc (Debian 12.2.0-14) 12.2.0", "ld": "GNU ld (GNU Binutils for Debian) 2.40",
         "as": "GNU assembler (GNU Binutils for Debian) 2.40", "rustc": "(none)"}
REQ = KernelRequest(get_arch("x86_64"),
                           KernelSource(Path("/src"), "6.12.117", "deb:x", "debian6.12.117",
                                        "debian:6.12"),
                           pahole.Pahole(Path("/p/pahole"), "1.30", (), digest="aaaa"))


def key(req: KernelRequest = REQ, **tools: str) -> str:
    return kbuild.cache_key(req, {**TOOLS, **tools})


def test_same_inputs_same_key() -> None:
    assert key() == key()


def test_pahole_content_is_keyed(tmp_path: Path) -> None:
    # Same version, other binary (Debian's 1.30 vs a patched 1.30): other digest, other key.
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"\x7fELF pahole 1.30")
    b.write_bytes(b"\x7fELF pahole 1.30 patched")
    assert pahole.content_digest(a) != pahole.content_digest(b)
    patched = replace(REQ, pahole=replace(REQ.pahole, digest=pahole.content_digest(b)))
    assert key(patched) != key(replace(REQ, pahole=replace(REQ.pahole,
                                                           digest=pahole.content_digest(a))))


def test_the_loaders_trace_is_parsed() -> None:
    trace = ("\tlinux-vdso.so.1 (0x00007fab11f3b000)\n"
             "\tlibdw.so.1 => /usr/local/lib/libdw.so.1 (0x00007fab11e81000)\n"
             "\tlibbpf.so.1 => not found\n"
             "\t/lib64/ld-linux-x86-64.so.2 (0x00007fab11f3d000)\n")
    assert pahole.parse_loaded(trace) == [
        ("libdw.so.1", Path("/usr/local/lib/libdw.so.1")), ("libbpf.so.1", None),
        ("ld-linux-x86-64.so.2", Path("/lib64/ld-linux-x86-64.so.2"))]


def test_a_library_the_loader_finds_elsewhere_changes_the_digest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A libdw in /usr/local/lib (or on LD_LIBRARY_PATH) is what pahole runs with: the
    digest hashes the loader's choice, not a fixed list of dirs."""
    binary = Path("/usr/bin/pahole")
    if not binary.exists():
        pytest.skip("no /usr/bin/pahole")
    names = dict(pahole.loaded_libraries(binary))
    assert names.get("libdw.so.1") is not None and "libc.so.6" in names
    before = pahole.content_digest(binary)
    local = tmp_path / "lib"
    local.mkdir()
    rebuilt = local / "libdw.so.1"
    rebuilt.write_bytes(Path(str(names["libdw.so.1"])).read_bytes() + b"\0rebuilt")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(local))
    assert dict(pahole.loaded_libraries(binary))["libdw.so.1"] == rebuilt
    assert pahole.content_digest(binary) != before


@pytest.mark.parametrize("tool,other", [
    ("gcc", "gcc (Debian 12.2.0-14+b1) 12.2.0"),
    ("ld", "GNU ld (GNU Binutils for Debian) 2.41"),
    ("as", "GNU assembler (GNU Binutils for Debian) 2.41"),
    ("rustc", "rustc 1.85.0"),
])
def test_each_toolchain_program_is_keyed(tool: str, other: str) -> None:
    assert kbuild.cache_key(REQ, {**TOOLS, tool: other}) != key()


def test_llvm_version_and_toolchain_are_keyed() -> None:
    llvm = replace(REQ, toolchain=Toolchain("llvm", "-19"))
    assert key(llvm) != key()
    assert key(llvm, clang="clang version 19.1.7") != key(llvm, clang="clang version 19.1.6")


def test_cache_version_is_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    monkeypatch.setattr(kbuild, "CACHE_VERSION", kbuild.CACHE_VERSION + 1)
    assert key() != before


def _git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True)


def test_git_identity_sees_untracked_and_binary_changes(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=k@b", "-c", "user.name=k", "commit", "-q",
         "--allow-empty", "-m", "x")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    _git(tmp_path, "add", "blob.bin")
    _git(tmp_path, "-c", "user.email=k@b", "-c", "user.name=k", "commit", "-q", "-m", "b")
    clean = ksource._tree_identity(tmp_path)
    (tmp_path / "new.c").write_text("int x;\n")
    untracked = ksource._tree_identity(tmp_path)
    assert untracked != clean, "an untracked file did not change the identity"
    (tmp_path / "new.c").write_text("int y;\n")
    assert ksource._tree_identity(tmp_path) != untracked, "untracked content not hashed"
    (tmp_path / "new.c").unlink()
    (tmp_path / "blob.bin").write_bytes(b"\x00\x02")
    assert ksource._tree_identity(tmp_path) not in (clean, untracked), \
        "a binary change did not change the identity"
