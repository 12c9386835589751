"""Duplicate types in BTF (pure: reads bpftool's JSON). BTF dedup never means to emit two
identical types; two types of one split BTF with the same kind, name, size and
members/params/target (references resolved) are a dedup failure of pahole or libbpf."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Kinds libbpf's dedup does not merge: identical ones can be legitimate.
_NOT_DEDUPED = {"VAR", "DATASEC"}
# Named kinds a reference stands for by (kind, name) when the name is unique: what makes
# them one type is checked where they are defined, and references through them may be
# cyclic.
_BY_NAME = {"STRUCT", "UNION", "ENUM", "ENUM64", "FWD", "TYPEDEF", "INT", "FLOAT"}

Type = Mapping[str, object]


@dataclass(frozen=True)
class Duplicate:
    """Types of one split BTF that are the same type."""

    ids: tuple[int, ...]
    kind: str
    name: str
    target: str  # what it refers to or holds, resolved (for the message)

    def describe(self) -> str:
        """"TYPEDEF '__u64' -> INT 'long long unsigned int' x2 (ids 10, 31)"."""
        ids = ", ".join(str(i) for i in self.ids)
        return f"{self.kind} '{self.name}'{self.target} x{len(self.ids)} (ids {ids})"


# Who made a duplicate (attribute): pahole's own output already had it, or the tree's
# post-processing of pahole's output (7.x: resolve_btfids adds FUNC_PROTOs after dedup).
BY_PAHOLE = "pahole"
BY_TREE = "the tree's post-processing (resolve_btfids)"


def attribute(final: Sequence[Duplicate], pahole_own: Sequence[Duplicate]
              ) -> list[tuple[Duplicate, str]]:
    """Each duplicate group of a module's final split BTF with who made it: BY_PAHOLE when
    pahole's own output (before the tree's post-processing) already held as many extra
    copies of that type (same kind, name and target), else BY_TREE."""
    had: dict[tuple[str, str, str], int] = {}
    for d in pahole_own:
        key = (d.kind, d.name, d.target)
        had[key] = had.get(key, 0) + len(d.ids) - 1
    found = []
    for d in final:
        key = (d.kind, d.name, d.target)
        extra = len(d.ids) - 1
        by = BY_PAHOLE if had.get(key, 0) >= extra else BY_TREE
        had[key] = max(0, had.get(key, 0) - extra)
        found.append((d, by))
    return found


def _index(types: Sequence[Type]) -> dict[int, Type]:
    return {int(str(t["id"])): t for t in types}


class _Canon:
    """Canonical forms of types: what two types must share to be the same type."""

    def __init__(self, by_id: Mapping[int, Type]) -> None:
        self.by_id = by_id
        self.memo: dict[int, object] = {}
        # A name that several distinct types carry (two CUs' `struct console`) cannot stand
        # for one of them: references to such types stay by id.
        self.named: dict[tuple[object, str], int] = {}
        for t in by_id.values():
            key = (t["kind"], str(t.get("name", "(anon)")))
            self.named[key] = self.named.get(key, 0) + 1

    def ref(self, type_id: int, visiting: frozenset[int]) -> object:
        """How a reference to ``type_id`` compares: by name where the name is unique."""
        if type_id == 0:
            return ("void",)
        t = self.by_id.get(type_id)
        if t is None:
            return ("missing", type_id)
        name = str(t.get("name", "(anon)"))
        if t["kind"] in _BY_NAME and name != "(anon)":
            return (t["kind"], name) if self.named[(t["kind"], name)] == 1 else ("id", type_id)
        if type_id in visiting:
            return ("cycle",)
        return self.of(type_id, visiting | {type_id})

    def resolve(self, value: object, visiting: frozenset[int]) -> object:
        """``value`` (a type record or part of one, as bpftool's JSON gives them: dicts and
        lists) with its type ids resolved. A record's keys stay in bpftool's order, which
        is fixed per kind; scalars are taken as they are (this runs ~500k times for a
        vmlinux: a generic recursion over Mapping took 2.5 s of every point)."""
        if isinstance(value, dict):
            return tuple((k, self.ref(int(v), visiting) if k.endswith("type_id") else
                          self.resolve(v, visiting) if isinstance(v, (dict, list)) else v)
                         for k, v in value.items() if k != "id")
        if isinstance(value, list):
            return tuple(self.resolve(v, visiting) for v in value)
        return value

    def of(self, type_id: int, visiting: frozenset[int]) -> object:
        """The canonical form of ``type_id``."""
        if type_id not in self.memo:
            self.memo[type_id] = self.resolve(self.by_id[type_id], visiting)
        return self.memo[type_id]


def _duplicate(ids: list[int], by_id: Mapping[int, Type]) -> Duplicate:
    """A group of identical types, described by its first."""
    t = by_id[ids[0]]
    target = ""
    if "type_id" in t:
        target_t = by_id.get(int(str(t["type_id"])))
        target = (f" -> {target_t['kind']} '{target_t.get('name', '(anon)')}'"
                  if target_t else " -> void")
    return Duplicate(tuple(ids), str(t["kind"]), str(t.get("name", "(anon)")), target)


def duplicates(split: Sequence[Type], base: Sequence[Type] = ()) -> list[Duplicate]:
    """Groups of identical types among ``split`` (ids resolved through ``split`` and
    ``base``), largest first."""
    by_id = {**_index(base), **_index(split)}
    canon = _Canon(by_id)
    # Identical types share kind and name: a named type alone with its (kind, name) in
    # ``split`` has no twin, and its canonical form need not be made (most of a vmlinux).
    named = Counter((t["kind"], t.get("name", "(anon)")) for t in split)
    groups: dict[object, list[int]] = {}
    for t in split:
        name = t.get("name", "(anon)")
        if t["kind"] in _NOT_DEDUPED or (name != "(anon)" and named[(t["kind"], name)] < 2):
            continue
        type_id = int(str(t["id"]))
        groups.setdefault(canon.of(type_id, frozenset({type_id})), []).append(type_id)
    found = [_duplicate(ids, by_id) for ids in groups.values() if len(ids) > 1]
    return sorted(found, key=lambda d: (-len(d.ids), d.ids))
