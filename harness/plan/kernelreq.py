"""What kernel to build: a KernelRequest (arch, source, pahole, toolchain, kconfig
additions, variant, config base) and its merged, requested options. Pure: reads kconfigs/
and, for BPF CI's configuration, the tree's selftests config files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import REPO, kconfig
from harness.arches import GCC, Arch, Toolchain
from harness.errors import ConfigError
from harness.plan.ksource import KernelSource
from harness.plan.pahole import Pahole

KCONFIG_DIR = REPO / "kconfigs"
BASE_FRAGMENTS = ("base.config", "btf.config")
# Kernel variants of a point, by name: each but A adds kconfigs/<name>.config on top of A's
# options (same version string, so a module built for one has the vermagic of the others).
VARIANTS: Mapping[str, str] = {
    "": "kernel A: kbtf's fragments and the arch's",
    "prime": "A' = A + prime.config: more vmlinux types (a module's BTF ids move)",
    "refuse": "A_n = A + refuse.config: MODULE_ALLOW_BTF_MISMATCH=n (mismatched BTF refused)",
}
# Where a kernel's configuration starts (KernelRequest.config_base).
KBTF_BASE = "kbtf"  # tinyconfig, then kbtf's fragments merged in (merge_config.sh -m)
BPF_CI_BASE = "bpf-ci"  # BPF CI's: the tree's selftests configs concatenated, no base config
# The tree's files BPF CI concatenates, in its order (libbpf/ci build-linux/build.sh), under
# tools/testing/selftests/bpf; those a tree lacks are left out, as `cat 2>/dev/null` does.
BPF_CI_CONFIGS = ("config", "config.vm", "config.{arch}")
SELFTESTS_DIR = "tools/testing/selftests/bpf"


@dataclass(frozen=True)
class KernelRequest:
    """Everything that decides what kernel gets built."""

    arch: Arch
    source: KernelSource
    pahole: Pahole  # the kernel's pahole: sets CONFIG_PAHOLE_VERSION and Makefile.btf flags
    user_kconfig: tuple[str, ...] = ()  # --kconfig-add items: files or CONFIG_X=v
    variant: str = ""  # "": kernel A; else kconfigs/<variant>.config on top (A', A_n)
    toolchain: Toolchain = GCC
    config_base: str = KBTF_BASE  # KBTF_BASE or BPF_CI_BASE

    def fragments(self) -> tuple[Path, ...]:
        """Project fragments for this request, in merge order: kbtf's; or, for BPF CI's
        configuration, the tree's selftests configs and kbtf's arch fragment (console,
        virtio) last."""
        if self.config_base == BPF_CI_BASE:
            tree = self.source.path / SELFTESTS_DIR
            files = [tree / n.format(arch=self.arch.name) for n in BPF_CI_CONFIGS]
            return (*[f for f in files if f.is_file()], KCONFIG_DIR / self.arch.kconfig)
        names = [*BASE_FRAGMENTS, self.arch.kconfig]
        return tuple(KCONFIG_DIR / n for n in names)

    def variant_fragments(self) -> tuple[Path, ...]:
        """Fragments applied over the merged ones (they may change their values)."""
        return (KCONFIG_DIR / f"{self.variant}.config",) if self.variant else ()

    def requested(self) -> dict[str, kconfig.Option]:
        """The merged options this kernel must end up with.

        Raises ConfigError on a conflict between project fragments or a bad user item.
        """
        missing = [p for p in self.fragments() if not p.is_file()]
        if missing:
            raise ConfigError(f"no kconfig fragment {missing[0]} for arch {self.arch.name}")
        if self.config_base == BPF_CI_BASE:
            selftests = self.source.path / SELFTESTS_DIR / "config"
            if not selftests.is_file():
                raise ConfigError(f"{self.source.path} has no {SELFTESTS_DIR}/config: BPF CI "
                                  "cannot configure this tree; give a kernel tree with BPF "
                                  "selftests")
            # Concatenated as BPF CI does: a later file's value wins.
            merged = kconfig.apply_overrides({}, (kconfig.parse_file(p)
                                                  for p in self.fragments()))
        else:
            merged = kconfig.merge(kconfig.parse_file(p) for p in self.fragments())
        overrides = [kconfig.parse_file(p) for p in self.variant_fragments()]
        overrides += [kconfig.parse_user_item(i) for i in self.user_kconfig]
        return kconfig.apply_overrides(merged, overrides)
