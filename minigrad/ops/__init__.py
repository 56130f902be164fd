"""Differentiable ops, one module per family; each op's backward sits beside its forward.

- ``elementwise``: + - * / **, neg, exp, log, sqrt, abs, tanh, sigmoid, relu, clamp, where, masked_fill, casts
- ``reduce``: sum, mean, max, min, softmax, log_softmax, logsumexp, all, any, argmax, argmin, cumsum, sort,
  argsort, topk
- ``logic``: comparisons, logical and bitwise ops, isnan/isinf/isfinite, floor division (not differentiable)
- ``linalg``: matmul, addmm
- ``shape``: reshape, permute/transpose, flip, expand, indexing, gather, stack, cat, split, chunk, unbind
- ``loss``: mse_loss, nll_loss, each one node as torch records it

The RNN's fused step and its joins live with the RNN: ``minigrad.nn._recurrent``.
"""
from minigrad.ops import elementwise, linalg, logic, loss, reduce, shape  # noqa: F401
