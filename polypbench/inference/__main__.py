"""``python -m polypbench.inference SPEC``: the sandboxed model run (:mod:`polypbench.inference.child`)."""

from __future__ import annotations

import sys

from polypbench.fileio import quick_exit
from polypbench.inference.child import main

if __name__ == "__main__":
    quick_exit()
    sys.exit(main(sys.argv[1:]))
