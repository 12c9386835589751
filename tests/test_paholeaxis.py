"""The pahole-axis comparison (pure parts): lost functions, growth, the table."""

from __future__ import annotations

from harness.btf.paholeaxis import ModuleBtfFigures, axis_table, c_diff, compare

BASE = ModuleBtfFigures(29, 750, 9, ("kbtf_hello_open", "kbtf_hello_poke"), 0)


def test_lost_function_and_growth() -> None:
    grown = ModuleBtfFigures(340, 9000, 53, ("kbtf_hello_poke",), 13)
    cmp = compare(grown, BASE)
    assert cmp.lost_functions == ("kbtf_hello_open",)
    assert cmp.growth == round(340 / 29, 2) and cmp.over(2.0) and not cmp.over(20.0)
    same = compare(BASE, BASE)
    assert same.lost_functions == () and same.growth == 1.0


def test_table_and_diff() -> None:
    table = axis_table([{"module": "kbtf_hello/kbtf_hello.ko", "point": "p2", "baseline": "p1",
                         "types": 340, "growth": "11.72x (over limit)", "lost": "none"}])
    assert table.splitlines()[0].startswith("| module | point | baseline |")
    assert "| 340 |" in table and "11.72x (over limit)" in table
    diff = c_diff("typedef int a;\n", "typedef int a;\ntypedef int a;\n", "p1/x.h", "p2/x.h")
    assert diff.startswith("--- p1/x.h") and "+typedef int a;" in diff
    assert c_diff("x\n", "x\n", "a", "b") == ""
