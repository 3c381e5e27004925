"""How many examples a property test draws: the figure it asks for, or fewer while mutation testing.

`make mutation` (bench/mutation.py) sets WOOBIRD_MAX_EXAMPLES so that each of thousands of mutants
costs a second rather than the hundreds of examples of a normal run, which draws all it asks for.
"""

from __future__ import annotations

import os


def examples(wanted: int) -> int:
    cap = os.environ.get("WOOBIRD_MAX_EXAMPLES")
    return min(wanted, int(cap)) if cap else wanted
