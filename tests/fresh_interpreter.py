"""What a fresh interpreter has imported after running some statements: for the tests that keep
heavy packages (an exporter, an HTTP client) off a path that does not need them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_modules(statements: str, packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` (names or dotted prefixes) imported once ``statements`` ran
    in a new interpreter started in the repository's root, sorted."""
    code = (
        f"import sys\n{statements}\n"
        f"print(*sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') "
        f"for p in {packages!r})))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
