"""Regenerate ``docs/configuration.md`` from ``PoolConfig`` and ``NodeConfig``.

Usage: ``python scripts/gen_config_reference.py [OUT]`` (default: ``docs/configuration.md``).
``tests/test_config_docs.py`` fails when the checked-in file differs from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snakepit_actors.ops.config_docs import render_reference  # noqa: E402


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "configuration.md"
    out.write_text(render_reference())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
