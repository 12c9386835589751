"""BTF knowledge: ELF/BTF sections, what a tree's rules make, dedup, type names, bpftrace output."""
