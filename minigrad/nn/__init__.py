"""Neural-network building blocks, following ``torch.nn``'s names.

- ``module``: ``Module`` (buffers, ``to(dtype)``, forward hooks), ``Parameter``, ``ModuleList``, ``Sequential``
- ``layers``: ``Linear``, ``Embedding``, ``Dropout``
- ``activation``: ``Tanh``, ``ReLU``, ``Sigmoid``, ``Softmax``, ``LogSoftmax``, ``Identity``, ``Flatten``
- ``rnn``: ``RNNCell``, ``RNN``, ``LSTMCell``, ``LSTM``, ``GRUCell``, ``GRU`` (built from ordinary tensor
  ops; BPTT is ``loss.backward()``)
- ``loss``: ``MSELoss``, ``NLLLoss``, ``CrossEntropyLoss``, ``BCELoss``, ``BCEWithLogitsLoss``
- ``functional`` (``F``): the same layers, activations and losses as functions
- ``init``: ``torch.nn.init``'s initialisers (``xavier_uniform_``, ``kaiming_normal_``, ``orthogonal_``, ...)
- ``utils``: ``clip_grad_norm_``, ``clip_grad_value_``; ``utils.rnn.pad_sequence``
- ``summary(model, input_size)``: a table of layers, output shapes and parameter counts
"""
from minigrad.nn import functional, init, utils
from minigrad.nn.activation import Flatten, Identity, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from minigrad.nn.layers import Dropout, Embedding, Linear
from minigrad.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from minigrad.nn.module import Module, ModuleList, Parameter, Sequential
from minigrad.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from minigrad.nn.summary import summary
from minigrad.nn.utils import rnn as _utils_rnn  # noqa: F401 (makes nn.utils.rnn an attribute)

__all__ = [
           "GRU",
           "LSTM",
           "RNN",
           "BCELoss",
           "BCEWithLogitsLoss",
           "CrossEntropyLoss",
           "Dropout",
           "Embedding",
           "Flatten",
           "GRUCell",
           "Identity",
           "LSTMCell",
           "Linear",
           "LogSoftmax",
           "MSELoss",
           "Module",
           "ModuleList",
           "NLLLoss",
           "Parameter",
           "RNNCell",
           "ReLU",
           "Sequential",
           "Sigmoid",
           "Softmax",
           "Tanh",
           "functional",
           "init",
           "summary",
           "utils",
]
