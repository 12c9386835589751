"""Plan: turn options into matrix points (arch, kernel source, toolchain, paholes, modules)."""
