"""RNN training step (forward, backward, SGD step) with the same weights: minigrad.nn.RNN vs torch.nn.RNN
vs a torch.nn.RNNCell loop (H <= 128), float32 and float64."""
import pytest

from bench.cases import rnn_cases
from bench.conftest import params


@pytest.mark.parametrize("case,impl", params(rnn_cases()))
def test_rnn_training_step(measure, case, impl):
    measure(case, impl)
