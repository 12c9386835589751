"""bpftrace output: a kfunc probe that failed because the function has no BTF, and only that."""

from pathlib import Path

from harness.btf.bpftrace import attach_program, missing_btf_error, traceable


def test_captured_no_btf_error_is_recognised(data: Path) -> None:
    out = (data / "bpftrace-kfunc-nobtf.txt").read_text()
    line = missing_btf_error(out, "kbtf_hello_poke")
    assert line == "stdin:1:1-33: ERROR: kfunc:kbtf_hello_poke: no BTF data for kbtf_hello_poke"


def test_bpftrace_0_27_wording_is_recognised(data: Path) -> None:
    out = (data / "bpftrace-0.27-kfunc-nobtf.txt").read_text()
    assert missing_btf_error(out, "kbtf_hello_poke") == (
        'stdin:1:1-33: ERROR: Could not parse arguments of "kbtf_hello_poke": BTF data for the '
        "function not found")
    assert missing_btf_error(out, "other_func") is None


def test_no_fentry_match_names_the_missing_btf() -> None:
    # bpftrace 0.27 in a guest where kbtf_hello without BTF replaced one with BTF.
    out = ("stdin:1:1-33: ERROR: No matches for fentry kbtf_hello:kbtf_hello_poke.\n"
           'kfunc:kbtf_hello:kbtf_hello_poke { printf("value=%d\\n", args->value); }\n')
    assert missing_btf_error(out, "kbtf_hello_poke") == (
        "stdin:1:1-33: ERROR: No matches for fentry kbtf_hello:kbtf_hello_poke.")
    assert missing_btf_error(out, "kbtf_hello") is None


def test_other_failures_are_not_a_missing_btf() -> None:
    for out in (
        "stdin:1:37-43: ERROR: syntax error, unexpected identifier",
        "ERROR: Could not resolve symbol: kbtf_hello_poke",
        "ERROR: Error attaching probe: kfunc:kbtf_hello:kbtf_hello_poke: Operation not supported",
        "ERROR: kfunc:other_func: no BTF data for other_func",
        'ERROR: Could not parse arguments of "other_func": BTF data for the function not found',
        "bpftrace: error while loading shared libraries: libbpf.so.1",
        "ERROR: No matches for fentry kbtf_hello:other_func.",
        "",
    ):
        assert missing_btf_error(out, "kbtf_hello_poke") is None, out


def test_traceable_functions_of_one_module() -> None:
    listing = "do_sys_open\nkbtf_hello_poke [kbtf_hello]\ndrill_act_write [drill_mod]\n"
    assert traceable(listing, "kbtf_hello") == {"kbtf_hello_poke"}
    assert attach_program("kprobe:f").startswith("kprobe:f { @hits0 = count(); }")
    both = attach_program("kprobe:f", "kfunc:m:f")
    assert both.startswith("kprobe:f { @hits0 = count(); } kfunc:m:f { @hits1 = count(); }")


def test_map_values_and_printed_values_are_exact() -> None:
    from harness.btf.bpftrace import map_value, printed_values

    assert map_value("Attaching 1 probe...\n\n@calls: 5\n", "@calls") == 5
    assert map_value("@calls: 50\n", "@calls") == 50  # not 5
    assert map_value("@callsx: 5\n", "@calls") is None
    assert printed_values("value=42\n", "value") == [42]
    assert printed_values("value=4294967338\n", "value") == [4294967338]  # 2^32 + 42: a width bug
    assert printed_values("xvalue=42\nvalue=42 more\n", "value") == []


def test_the_module_lines_filter_keeps_all_that_traceable_reads() -> None:
    import subprocess

    from harness.btf.bpftrace import MODULE_FILTER_FUNCTIONS

    listing = ("do_one_initcall\nkbtf_hello_poke [kbtf_hello]\nkbtf_hello_write [kbtf_hello]\n"
               "vfs_read\nother_fn [other]\n")
    pattern = MODULE_FILTER_FUNCTIONS.split("'")[1]
    kept = subprocess.run(["grep", "-F", pattern], input=listing, capture_output=True,
                          text=True).stdout
    assert traceable(kept, "kbtf_hello") == traceable(listing, "kbtf_hello") == {
        "kbtf_hello_poke", "kbtf_hello_write"}


def test_a_builds_tests_share_one_program() -> None:
    from harness.btf.bpftrace import EXERCISES, HELLO, HELLO_KFUNC, shared_program

    attach = ("kprobe:kbtf_hello_open", "kfunc:kbtf_hello:kbtf_hello_open")
    both = shared_program(attach, EXERCISES["kbtf_hello"])
    assert both == ("kprobe:kbtf_hello_open { @hits0 = count(); } kfunc:kbtf_hello:"
                    "kbtf_hello_open { @hits1 = count(); } kprobe:kbtf_hello_poke { @calls = "
                    'count(); } ' + HELLO_KFUNC)
    assert "interval" not in both  # the trigger ends it (bpftrace -c)
    assert shared_program((), HELLO) == " ".join(HELLO.probes)
    assert shared_program(attach, None) == attach_program(*attach)
    assert HELLO.trigger.count("> /proc/kbtf_hello") == 5
