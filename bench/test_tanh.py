"""tanh forward, float32/float64, 1K to 4M elements, 1 and 2 threads: minigrad vs np.tanh vs torch.tanh."""
import pytest

from bench.cases import tanh_cases
from bench.conftest import params


@pytest.mark.parametrize("case,impl", params(tanh_cases()))
def test_tanh(measure, case, impl):
    measure(case, impl)
