"""Neural-network building blocks, following ``torch.nn``'s names.

- ``module``: ``Module``, ``Parameter``, ``ModuleList``, ``Sequential``
- ``layers``: ``Linear``, ``Embedding``, ``Dropout``
- ``rnn``: ``RNNCell``, ``RNN`` (built from ordinary tensor ops; BPTT is ``loss.backward()``)
- ``loss``: ``MSELoss``, ``NLLLoss``, ``CrossEntropyLoss``
- ``functional`` (``F``): the same layers and losses as functions
- ``utils``: ``clip_grad_norm_``, ``clip_grad_value_``
"""
from minigrad.nn import functional, utils
from minigrad.nn.layers import Dropout, Embedding, Linear
from minigrad.nn.loss import CrossEntropyLoss, MSELoss, NLLLoss
from minigrad.nn.module import Module, ModuleList, Parameter, Sequential
from minigrad.nn.rnn import RNN, RNNCell

__all__ = [
           "RNN",
           "CrossEntropyLoss",
           "Dropout",
           "Embedding",
           "Linear",
           "MSELoss",
           "Module",
           "ModuleList",
           "NLLLoss",
           "Parameter",
           "RNNCell",
           "Sequential",
           "functional",
           "utils",
]
