"""modpost's undefined symbols name the option that would export them, from a small tree
shaped like the kernel's (a direct obj- line and a composite object)."""

from __future__ import annotations

from pathlib import Path

from harness.builds import exports

LOG = ('  MODPOST /m/Module.symvers\n'
       'ERROR: modpost: "crypto_alloc_ahash" [/m/ovpn-dco-v2.ko] undefined!\n'
       'ERROR: modpost: "gro_cells_init" [/m/ovpn-dco-v2.ko] undefined!\n'
       'ERROR: modpost: "crypto_alloc_ahash" [/m/other.ko] undefined!\n'
       'ERROR: modpost: "not_anywhere" [/m/ovpn-dco-v2.ko] undefined!\n')


def tree(tmp_path: Path) -> Path:
    (tmp_path / "crypto").mkdir()
    (tmp_path / "crypto/ahash.c").write_text("EXPORT_SYMBOL_GPL(crypto_alloc_ahash);\n")
    (tmp_path / "crypto/Makefile").write_text(
        "crypto_hash-y += ahash.o\ncrypto_hash-y += shash.o\n"
        "obj-$(CONFIG_CRYPTO_HASH2) += crypto_hash.o\n")
    (tmp_path / "net/core").mkdir(parents=True)
    (tmp_path / "net/core/gro_cells.c").write_text("EXPORT_SYMBOL(gro_cells_init);\n")
    (tmp_path / "net/core/Makefile").write_text("obj-$(CONFIG_GRO_CELLS) += gro_cells.o\n")
    return tmp_path


def test_undefined_symbols_once_each() -> None:
    assert exports.undefined_symbols(LOG) == ["crypto_alloc_ahash", "gro_cells_init",
                                              "not_anywhere"]


def test_the_hint_names_file_option_and_what_to_try(tmp_path: Path) -> None:
    said = exports.hint(LOG, tree(tmp_path))
    assert ("crypto_alloc_ahash is exported by crypto/ahash.c (built with CONFIG_CRYPTO_HASH2): "
            "try --kconfig-add CONFIG_CRYPTO_HASH2=y") in said
    assert ("gro_cells_init is exported by net/core/gro_cells.c (built with CONFIG_GRO_CELLS)"
            in said)
    assert f"not_anywhere is exported nowhere in {tmp_path}" in said
