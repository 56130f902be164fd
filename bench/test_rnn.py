"""Recurrent training step (forward, loss (out * w).sum(), backward, SGD step) with the same weights:
minigrad's nn.RNN / LSTM / GRU vs torch's vs JAX-jit (when installed), and a torch cell loop (RNNCell,
LSTMCell, GRUCell) at H <= 128, float32 and float64; LSTM and GRU also under out.sum() and mse_loss, and an
LSTM written from core ops.  Layers minigrad does not have yet have no benchmarks."""
import pytest

from bench.cases import rnn_cases
from bench.conftest import params


@pytest.mark.parametrize("case,impl", params(rnn_cases()))
def test_rnn_training_step(measure, case, impl):
    measure(case, impl)
