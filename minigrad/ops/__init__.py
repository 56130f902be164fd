"""Differentiable ops, one module per family; each op's backward sits beside its forward.

- ``elementwise``: + - * / **, neg, exp, log, sqrt, abs, tanh, sigmoid, relu, clamp, where, masked_fill, casts
- ``reduce``: sum, mean, max, min, softmax, log_softmax, logsumexp, all, any, argmax, argmin, cumsum, sort,
  argsort, topk
- ``logic``: comparisons, logical and bitwise ops, isnan/isinf/isfinite, floor division (not differentiable)
- ``linalg``: matmul
- ``shape``: reshape, permute/transpose, flip, expand, indexing, gather, stack, cat, split, chunk, unbind
"""
from minigrad.ops import elementwise, linalg, logic, reduce, shape  # noqa: F401
