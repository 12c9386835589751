"""bpftrace output: a kfunc probe that failed because the function has no BTF, and only that."""

from pathlib import Path

from harness.bpftrace import missing_btf_error


def test_captured_no_btf_error_is_recognised(data: Path) -> None:
    out = (data / "bpftrace-kfunc-nobtf.txt").read_text()
    line = missing_btf_error(out, "kbtf_hello_poke")
    assert line == "stdin:1:1-33: ERROR: kfunc:kbtf_hello_poke: no BTF data for kbtf_hello_poke"


def test_other_failures_are_not_a_missing_btf() -> None:
    for out in (
        "stdin:1:37-43: ERROR: syntax error, unexpected identifier",
        "ERROR: Could not resolve symbol: kbtf_hello_poke",
        "ERROR: Error attaching probe: kfunc:kbtf_hello:kbtf_hello_poke: Operation not supported",
        "ERROR: kfunc:other_func: no BTF data for other_func",
        "bpftrace: error while loading shared libraries: libbpf.so.1",
        "",
    ):
        assert missing_btf_error(out, "kbtf_hello_poke") is None, out
