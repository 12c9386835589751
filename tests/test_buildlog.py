"""Build failures: the environment's (ERROR) told apart from the product's (FAILED)."""

from __future__ import annotations

from pathlib import Path

from harness.builds import buildlog
from harness.errors import BuildFailure, CommandError, CommandTimeout, HarnessError


def classify(tmp_path: Path, text: str, exc: CommandError | None = None) -> object:
    log = tmp_path / "build.log"
    log.write_text(text)
    return buildlog.classify("module build of kbtf_hello", exc or CommandError("exit 2"), log)


def test_pahole_crash_is_the_products_failure(tmp_path: Path) -> None:
    err = classify(tmp_path, "$ make -C /k M=/m modules\n  BTF [M] /m/kbtf_hello.ko\n"
                   "/bin/sh: line 1: 4242 Segmentation fault      pahole -J --btf_base vmlinux\n"
                   "make[3]: *** [scripts/Makefile.modfinal:56: kbtf_hello.ko] Error 139\n")
    assert isinstance(err, BuildFailure)
    assert "Segmentation fault" in str(err) and "pahole" in str(err)


def test_pahole_that_rejects_an_option(tmp_path: Path) -> None:
    err = classify(tmp_path, "pahole: unrecognized option '--btf_features=distilled_base'\n"
                   "make: *** [Makefile:1] Error 64\n")
    assert isinstance(err, BuildFailure) and "unrecognized option" in str(err)


def test_compile_error_names_the_first_error_line(tmp_path: Path) -> None:
    err = classify(tmp_path, "/m/kbtf_hello.c:3:1: error: unknown type name 'foo'\n"
                   "make[2]: *** Error 1\n")
    assert isinstance(err, BuildFailure) and "unknown type name" in str(err)


def test_hang_is_the_products_failure(tmp_path: Path) -> None:
    err = classify(tmp_path, "  BTF [M] /m/kbtf_hello.ko\n",
                   CommandTimeout("command timed out after 300s and was killed: make ..."))
    assert isinstance(err, BuildFailure) and "hung" in str(err)


def test_full_disk_and_missing_tool_are_the_environments(tmp_path: Path) -> None:
    full = classify(tmp_path, "/usr/bin/ld: final link failed: No space left on device\n")
    assert type(full) is HarnessError and "No space left on device" in str(full)
    missing = classify(tmp_path, "/bin/sh: 1: flex: not found\nmake: *** Error 127\n")
    assert type(missing) is HarnessError and "flex: not found" in str(missing)


def test_a_build_roots_wrapper_that_cannot_run_its_program_is_the_environments(
        tmp_path: Path) -> None:
    # make -C linux-source-6.12 LLVM=-99 tinyconfig, clang-99 a wrapper of a sid build root
    # that has no clang-99 (captured): kbtf's wrapper failed, not the tree's configure.
    err = classify(tmp_path, "$ make -C /src O=/out LLVM=-99 tinyconfig\n"
                   "  HOSTCC  scripts/basic/fixdep\n"
                   "bwrap: execvp clang-99: No such file or directory\n"
                   "make[3]: *** [/src/scripts/Makefile.host:116: scripts/basic/fixdep] Error 1\n"
                   "make[2]: *** [/src/Makefile:641: scripts_basic] Error 2\n")
    assert type(err) is HarnessError and "bwrap: execvp clang-99" in str(err)
    compile_error = classify(tmp_path, "/m/x.c:3:1: error: the bwrap: word in a message\n"
                             "make[2]: *** Error 1\n")
    assert isinstance(compile_error, BuildFailure)


def test_resolve_btfids_failures_of_7x_are_named(tmp_path: Path) -> None:
    # 7.x: scripts/gen-btf.sh runs resolve_btfids, which distils and sorts module BTF.
    for line in ("FAILED to distill base BTF: Invalid argument",
                 "FAILED: btf permute: No such file or directory",
                 "FAILED to sort BTF: Invalid argument"):
        err = classify(tmp_path, "$ make -C /k M=/m modules\n  BTF [M] /m/kbtf_hello.ko\n"
                       f"{line}\nmake[3]: *** [scripts/Makefile.modfinal:55: /m/kbtf_hello.ko] "
                       "Error 255\n")
        assert isinstance(err, BuildFailure), line
        assert line in str(err), err


def test_a_missing_tool_elsewhere_does_not_beat_the_compile_error(tmp_path: Path) -> None:
    text = ("$ make -C /k M=/m modules\n"
            "/bin/sh: 1: sphinx-build: not found\n"  # an optional tool probed early, harmless
            + "  CC [M]  /m/other.o\n" * 40
            + "/m/kbtf_hello.c:3:1: error: unknown type name 'foo'\n"
            "make[2]: *** [scripts/Makefile.build:229: /m/kbtf_hello.o] Error 1\n"
            "make[1]: *** [Makefile:1937: /m] Error 2\n")
    err = classify(tmp_path, text)
    assert isinstance(err, BuildFailure) and "unknown type name" in str(err)


def test_the_failing_recipes_own_environment_trouble_is_still_the_environments(
        tmp_path: Path) -> None:
    text = ("/m/kbtf_hello.c:3:1: warning: unused\n"
            "cc1: out of memory allocating 65536 bytes\nKilled signal terminated program cc1\n"
            "make[2]: *** [scripts/Makefile.build:229: /m/kbtf_hello.o] Error 1\n")
    assert type(classify(tmp_path, text)) is HarnessError


def test_modpost_undefined_symbol_is_the_telling_line(tmp_path: Path) -> None:
    text = ("  MODPOST /m/Module.symvers\n"
            'ERROR: modpost: "crypto_alloc_ahash" [/m/ovpn-dco-v2.ko] undefined!\n'
            "make[3]: *** [scripts/Makefile.modpost:145: /m/Module.symvers] Error 1\n"
            "make[2]: *** [/k/Makefile:1877: modpost] Error 2\n")
    err = classify(tmp_path, text)
    assert isinstance(err, BuildFailure)
    assert 'ERROR: modpost: "crypto_alloc_ahash" [/m/ovpn-dco-v2.ko] undefined!' in str(err)


def test_step_lines_naming_error_files_are_not_the_reason() -> None:
    log = ("  HDRINST usr/include/linux/can/error.h\n"
           "  CC      /t/tools/build/libbpf/staticobjs/str_error.o\n"
           "  CLNG-BPF [test_progs] error_report.bpf.o\n"
           "jit_disasm_helpers.c:8:10: fatal error: llvm-c/Core.h: No such file or directory\n"
           "make: *** [Makefile:753: /t/jit_disasm_helpers.o] Error 1\n")
    assert buildlog.product_reason(log) == (
        "jit_disasm_helpers.c:8:10: fatal error: llvm-c/Core.h: No such file or directory")


def test_a_point_id_in_a_path_is_no_pahole_complaint() -> None:
    d = "/r/x86_64-debian6.12.117-gcc-pahole1.30/modules/main/m"
    log = (f'ERROR: modpost: "udp_tunnel6_xmit_skb" [{d}/m.ko] undefined!\n'
           f"make[3]: *** [/s/scripts/Makefile.modpost:145: {d}/Module.symvers] Error 1\n")
    want = f'ERROR: modpost: "udp_tunnel6_xmit_skb" [{d}/m.ko] undefined!'
    assert buildlog.product_reason(log) == want
    assert buildlog.product_reason("pahole: unrecognized option '--btf_features'\n") == (
        "pahole: unrecognized option '--btf_features'")


def test_a_compiler_that_cannot_start_its_assembler_is_the_environments(tmp_path: Path) -> None:
    # seen: the run's PATH led through a .venv that had become a link to itself; the kernel
    # build of a BPF CI job was blamed on the kernel (FAILED) before
    err = classify(tmp_path, "  CC      arch/x86/kernel/asm-offsets.s\n"
                   "gcc: fatal error: cannot execute \u2018as\u2019: execvp: Too many levels of "
                   "symbolic links\ncompilation terminated.\nmake[2]: *** Error 1\n")
    assert type(err) is HarnessError and "cannot execute" in str(err)
