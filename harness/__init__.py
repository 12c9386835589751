"""kbtf harness: build BTF kernels and modules, boot them, and probe their BTF.

One package per stage of the flow, each importing only from the stages before it
(docs/architecture.md; tests/test_layout.py enforces the order):

    harness/*.py  core: errors, processes, the arch registry, Kconfig, the cache, Debian apt
    plan/         what to run: matrix points, kernel sources, paholes, toolchains, modules
    btf/          what BTF is: ELF sections, the tree's rules, dedup, names, bpftrace output
    build/        kernels, modules, distro packages, build roots, kheaders scaffolds
    guest/        booting guests: accelerator, launchers, sessions, roots, module loading
    run/          one point's pipeline in a run, the run's protocol and its results

This package never imports pytest: ``conftest.py`` and ``suites/conftest.py`` map pytest
onto ``run/``, so the same code can be driven from scripts such as ``bench/``.
"""

from pathlib import Path

# The repository: kconfigs/, modules/ and results/ live here.
REPO = Path(__file__).resolve().parent.parent
