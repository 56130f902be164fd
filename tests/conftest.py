import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from minigrad import _backend, _reference

# Bounded example counts for the default run; MINIGRAD_HYPOTHESIS_PROFILE=long for a deeper campaign.
settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("MINIGRAD_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---- the kernel tests' paths (test_kernels.py, test_sigmoid_kernel.py, test_gate_kernels.py) ----------------
def _c_isas():
    return _backend.available_isas() if _backend.name == "c" else []


@pytest.fixture(params=_c_isas() + ["numpy"])
def K(request):
    """The kernel module under test, with the requested path forced for the duration of the test."""
    if request.param == "numpy":
        yield _reference
        return
    previous = _backend.isa()
    _backend.set_isa(request.param)
    try:
        yield _backend
    finally:
        _backend.set_isa(previous)


@pytest.fixture(params=_c_isas() or [pytest.param(None, marks=pytest.mark.skip("C backend not selected"))])
def C(request):
    previous = _backend.isa()
    _backend.set_isa(request.param)
    try:
        yield _backend
    finally:
        _backend.set_isa(previous)


@pytest.fixture
def threads():
    """set_num_threads for one test, restoring the previous count."""
    previous = _backend.get_num_threads()
    yield _backend.set_num_threads
    _backend.set_num_threads(previous)
