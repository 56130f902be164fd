"""Engine overhead: a forward add on tiny tensors, and forward+backward of a 4,000-node chain (the time
pytest-benchmark shows is per chain; divide by 4,000 for per node -- report.py does)."""
import pytest

from bench.cases import engine_cases
from bench.conftest import params


@pytest.mark.parametrize("case,impl", params(engine_cases()))
def test_engine(measure, case, impl):
    measure(case, impl)
