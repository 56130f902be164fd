"""minigrad's benchmark suite (see README.md here): a package so that the pytest-benchmark suite,
``report.py`` and the CI smoke share ``cases.py`` and ``harness.py``.

Import order is part of the measurement.  torch and minigrad share ONE OpenMP runtime per process (both
need ``libgomp.so.1``; whichever library loads first provides it), and libgomp reads ``OMP_WAIT_POLICY``
once, when it loads.  minigrad sets ``OMP_WAIT_POLICY=passive`` at import unless it is set; torch keeps
libgomp's default (spin, then sleep).  The suite loads torch first so that the peer runs as it ships and
is never slowed by our setting; minigrad then runs on the same runtime.  ``harness.machine()`` records the
runtime and the policy it loaded with; set ``OMP_WAIT_POLICY`` yourself to run both under one policy.
"""
import os
import sys

# What libgomp saw when it loaded: known only if neither library was imported before this package.
LOADED_BEFORE_BENCH = [m for m in ("torch", "minigrad") if m in sys.modules]
OMP_WAIT_POLICY_AT_LOAD = "unknown" if LOADED_BEFORE_BENCH else os.environ.get("OMP_WAIT_POLICY", "(unset)")

import torch  # noqa: F401  (first: see above)
