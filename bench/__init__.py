"""minigrad's benchmark suite (see README.md here): a package so that the pytest-benchmark suite,
``report.py`` and the CI smoke share ``cases.py`` and ``harness.py``.

torch runs its CPU kernels on OpenMP (its own ``libgomp``), which reads ``OMP_WAIT_POLICY`` once, when it
loads; minigrad's kernels run on minigrad's own thread pool and load no OpenMP runtime.  The suite imports
torch first, so the peer runs as it ships; ``harness.machine()`` records torch's runtime and the policy it
loaded with.
"""
import os
import sys

# What torch's libgomp saw when it loaded: known only if torch was not imported before this package.
LOADED_BEFORE_BENCH = [m for m in ("torch", "minigrad") if m in sys.modules]
OMP_WAIT_POLICY_AT_LOAD = "unknown" if LOADED_BEFORE_BENCH else os.environ.get("OMP_WAIT_POLICY", "(unset)")

import torch  # noqa: F401  (first: see above)
