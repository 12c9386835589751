"""Summary table and run directories."""

from pathlib import Path

from harness.run import results


def test_summary_table_rows_and_failures() -> None:
    rec = results.PointRecord(
        "x86_64-debian6.12.117-pahole1.30",
        facts={"kernel_pahole": "1.30", "btf_base_present": True},
        outcomes={"test_a": "passed", "test_b": "failed"},
    )
    table = results.summary_table([rec])
    lines = table.splitlines()
    assert lines[0].startswith("| point | arch | kernel | toolchain | kernel pahole")
    assert "| x86_64-debian6.12.117-pahole1.30 | - | - | - | 1.30 |" in lines[2]
    assert lines[2].endswith("| test_b (failed) |")


def test_new_run_dir_and_latest(tmp_path: Path) -> None:
    a = results.new_run_dir(tmp_path)
    b = results.new_run_dir(tmp_path)
    assert a != b and (tmp_path / "latest").resolve() == b.resolve()
    summary = results.write_matrix(b, [results.PointRecord("p")])
    assert summary.read_text().startswith("# kbtf results")
    assert (b / "matrix.json").exists()


def test_module_table_per_point_and_module() -> None:
    from harness.run.results import PointRecord, module_table

    rec = PointRecord("x86_64-p", outcomes={
        "test_module_builds_with_btf[default-v4l2loopback-dkms]": "passed",
        "test_module_builds_with_btf[split-v4l2loopback-dkms]": "skipped",
        "test_module_loads[default-v4l2loopback-dkms]": "failed",
        "test_module_builds_with_btf[default-kbtf_hello]": "passed"})
    distro = PointRecord("debian-bookworm-6.1.0-41-amd64", outcomes={
        "test_headers_build_gives_module_btf[v4l2loopback-dkms]": "failed"})
    table = module_table([rec, distro], ["kbtf_hello", "v4l2loopback-dkms"])
    assert "| x86_64-p | v4l2loopback-dkms | passed | failed | - | - |" in table
    assert "| x86_64-p | kbtf_hello | passed | - | - | - |" in table
    assert "| debian-bookworm-6.1.0-41-amd64 | v4l2loopback-dkms | failed | - | - | - |" in table
    assert module_table([rec], []) == ""


def test_jobs_get_their_own_table_with_the_runners_outcomes() -> None:
    job = results.PointRecord("x86_64-gcc-test_progs-debian7.2.13", facts={
        "vmtest_job": "x86_64-gcc/test_progs", "kernel": "debian7.2.13", "toolchain": "gcc",
        "kernel_pahole": "1.32", "bpf_clang": "clang-21 (sid build root)", "substitution": "-",
        "guest": "2 vCPUs, 5G (BPF CI: 4 vCPUs, 5G; this host has 2 cores)"},
        outcomes={"test_selftests_build": "failed", "test_progs[module_attach]": "passed",
                  "test_progs[kfunc_call]": "failed", "test_progs[cpumask]": "skipped: x"})
    point = results.PointRecord("x86_64-debian6.12.117-gcc-pahole1.30", facts={"arch": "x86_64"})
    assert job.point not in results.summary_table([job, point])
    assert results.summary_table([job]) == ""
    table = results.job_table([job, point])
    assert table.splitlines()[2] == (
        "| x86_64-gcc-test_progs-debian7.2.13 | x86_64-gcc/test_progs | debian7.2.13 | gcc | "
        "1.32 | clang-21 (sid build root) | - | 2 vCPUs, 5G (BPF CI: 4 vCPUs, 5G; this host "
        "has 2 cores) | 1/3 | failed | cpumask (skipped: x), kfunc_call (failed) |")
    assert results.job_table([point]) == ""


def test_a_points_facts_set_up_twice_by_one_worker_are_merged(tmp_path: Path) -> None:
    # one worker ran both parts of a point with another point between them: the session
    # fixture `facts` was set up (and written) twice; the first part's facts must stay
    from harness.run.context import RunContext

    run = RunContext.__new__(RunContext)
    run.run_dir, run.outcomes = tmp_path, {}
    run.write_facts("s390x-k", {"arch": "s390x", "config_pahole_version": 130,
                                "module_btf_types": 12})
    run.write_facts("s390x-k", {"arch": "s390x", "accel": "tcg"})
    unit = type("P", (), {"id": "s390x-k", "rerun": lambda self, tests=(): "r",
                          "facts": lambda self: {"arch": "s390x"}})()
    record = run._record(unit)
    assert record.facts["config_pahole_version"] == 130 and record.facts["accel"] == "tcg"


def test_a_record_that_lost_a_fact_its_tests_produced_is_an_error_of_the_run(
        tmp_path: Path) -> None:
    """issue 32 item 27: the facts a point's tests write are journaled as they are written;
    a record without one of them (a facts file overwritten, as a worker running both parts
    of a point did) is the run's error, not a row of '-'."""
    from harness.run.context import RunContext

    run = RunContext.__new__(RunContext)
    run.run_dir, run.outcomes, run._facts = tmp_path, {}, {}
    unit = type("P", (), {"id": "s390x-k", "rerun": lambda self, tests=(): "r",
                          "facts": lambda self: {"arch": "s390x"}})()
    first = run.facts_record(unit)
    first["config_pahole_version"] = 130
    first.update(module_btf_types=12)
    second = run.facts_record(unit)  # the fixture set up again in this process: one record
    assert second is first
    second["accel"] = "tcg"
    (tmp_path / "s390x-k").mkdir(exist_ok=True)
    # the old write: the second part's file replaced the first's
    (tmp_path / "s390x-k" / "facts-gw0.json").write_text('{"arch": "s390x", "accel": "tcg"}')
    assert run.lost_facts(run._record(unit)) == ["config_pahole_version", "module_btf_types"]
    # what write_facts does now: merged, nothing lost
    run.write_facts("s390x-k", dict(first))
    run.write_facts("s390x-k", dict(second))
    assert run.lost_facts(run._record(unit)) == []
    # two workers' rows of one list are both kept
    (tmp_path / "s390x-k" / "facts-gw1.json").write_text('{"pahole_axis": [{"row": 2}]}')
    run.write_facts("s390x-k", {"pahole_axis": [{"row": 1}]})
    rows = run._record(unit).facts["pahole_axis"]
    assert isinstance(rows, list) and sorted(r["row"] for r in rows) == [1, 2]
