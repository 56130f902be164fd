"""The two threading runtimes as pytest-benchmark groups (the smoke of bench/cotenancy.py, which measures
them in fresh processes, idle, beside a busy core and right after numpy's BLAS): the 1024^3 float32 product
and the float32 RNN step at 2 threads, in this process, after 0.2 s of quiet."""
import time

import pytest

from bench import cotenancy
from minigrad import _backend

RUNTIMES = [r for r in ("pool", "openmp") if r in _backend.available_threadings()]
WORK = cotenancy.workloads()


@pytest.fixture
def runtime():
    kind, count = _backend.threading_backend(), _backend.get_num_threads()
    yield
    _backend.set_threading(kind)
    _backend.set_num_threads(count)


@pytest.mark.parametrize("workload", list(WORK))
@pytest.mark.parametrize("kind", RUNTIMES)
def test_runtime(benchmark, runtime, kind, workload):
    _backend.set_threading(kind)
    _backend.set_num_threads(2)
    benchmark.group = f"{workload}, 2 threads"
    benchmark.extra_info.update(threading=kind)
    fn = WORK[workload][0]
    fn()
    time.sleep(0.2)
    benchmark(fn)
