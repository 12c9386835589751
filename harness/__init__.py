"""kbtf harness: build BTF kernels and modules, boot them, and probe their BTF.

This package never imports pytest: ``conftest.py`` and ``suites/conftest.py`` turn pytest
options into the typed requests defined here (``matrix.MatrixPoint``), so the same code can
be driven from scripts such as ``bench/``.
"""
