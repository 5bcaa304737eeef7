"""Fail when the venv holds a .pth file we do not know: .pth files run code at every interpreter start.

litellm 1.82.7/1.82.8 shipped a malicious .pth; an allow-list catches the next one.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

ALLOWED = [
    re.compile(r"distutils-precedence\.pth"),  # setuptools
    re.compile(r"__editable__\.ca_actors-[\w.]+\.pth"),  # our own editable install
    re.compile(r"__editable___ca_actors_[\w.]+_finder\.pth"),
]


def main() -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    unknown = [p.name for p in sorted(site.glob("*.pth")) if not any(a.fullmatch(p.name) for a in ALLOWED)]
    for name in unknown:
        print(f"unexpected .pth file in {site}: {name} (runs code at interpreter start; check where it came from)")
    print(f".pth check: {len(list(site.glob('*.pth')))} file(s), {len(unknown)} unexpected")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
