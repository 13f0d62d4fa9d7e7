"""``python -m acomp.bench``: run the bench (see `acomp.bench`)."""

from __future__ import annotations

import sys

from acomp.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
