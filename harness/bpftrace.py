"""Reading bpftrace's output (pure): did a kfunc probe fail for want of BTF?"""

from __future__ import annotations

import re


def missing_btf_error(output: str, func: str) -> str | None:
    """The line where bpftrace says ``func`` has no BTF (so a kfunc/fentry probe on it cannot
    attach), or None if it failed for another reason or did not fail."""
    pattern = re.compile(rf"^.*(?:no BTF (?:data |found |info )?for|BTF .*not found for|"
                         rf"cannot find BTF for).*\b{re.escape(func)}\b.*$",
                         re.IGNORECASE | re.MULTILINE)
    m = pattern.search(output)
    return m.group(0).strip() if m else None
