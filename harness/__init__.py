"""kbtf harness: build BTF kernels and modules, boot them, and probe their BTF.

This package never imports pytest: ``conftest.py`` turns pytest options into the
typed requests defined here, and ``python -m harness`` drives the same code.
"""
