"""The bad-input catalogue: what every public function does with input it cannot use.

Each entry either expects a clear exception (the type minigrad documents -- shape problems ``ValueError``,
wrong types and dtypes ``TypeError``, torch's types in ``nn`` where torch defines them -- with a message
naming the problem), or pins documented behaviour against PyTorch (NaN/inf propagate, empty tensors work,
weak Python operands, mixed precision).  Sections: factories and conversion, elementwise ops, reductions,
matmul, shapes and indexing, autograd, nn modules, losses, optimisers, clipping, tbptt, checkpoints.
"""
import json
import math
import warnings

import numpy as np
import pytest
import torch
from optest import check_op

import minigrad as mg
from minigrad import nn, optim, tbptt
from minigrad.nn import functional as F
from minigrad.serialization import CheckpointError

NAN, INF = float("nan"), float("inf")
HUGE = 2**40  # elements: terabytes at any dtype


def _param(*shape, dtype=None):
    return nn.Parameter(mg.zeros(*shape, dtype=dtype))


def _with_grad(p, grad):
    p.grad = grad
    return p


def _case(id_, call, exc, match):
    return pytest.param(call, exc, match, id=id_)


# Every entry: (id, call, exception type, regex the message must match).
RAISES = [
    # ---- factories and conversion ---------------------------------------------------------------------
    _case("zeros-negative", lambda: mg.zeros(-1), ValueError, r"non-negative.*-1"),
    _case("zeros-float-size", lambda: mg.zeros(2.5), TypeError, r"sizes must be ints.*2\.5"),
    _case("zeros-str-size", lambda: mg.zeros("3"), TypeError, "sizes must be ints"),
    _case("zeros-None-size", lambda: mg.zeros(None), TypeError, "sizes must be ints"),
    _case("zeros-int16-dtype", lambda: mg.zeros(2, dtype=np.int16), TypeError,
          "float32, float64, int32, int64 or bool; got dtype int16"),
    _case("randn-int-dtype", lambda: mg.randn(2, dtype=mg.int64), TypeError, "float dtype.*int64"),
    _case("zeros-unknown-dtype", lambda: mg.zeros(2, dtype="foo"), TypeError, "dtype must be"),
    _case("zeros-torch-dtype", lambda: mg.zeros(2, dtype=torch.float32), TypeError, "dtype must be"),
    _case("zeros_like-ndarray", lambda: mg.zeros_like(np.ones(3)),
          TypeError, "expected a Tensor, got ndarray"),
    _case("randn_like-list", lambda: mg.randn_like([1.0]), TypeError, "expected a Tensor, got list"),
    _case("ones_like-int8-dtype", lambda: mg.ones_like(mg.ones(2), dtype=np.int8), TypeError, "int8"),
    _case("full-complex-value", lambda: mg.full((2,), 1j), TypeError, "complex"),
    _case("full-str-value", lambda: mg.full((2,), "a"), TypeError, r"fill_value|str"),
    _case("eye-negative", lambda: mg.eye(-1), ValueError, "negative"),
    _case("arange-zero-step", lambda: mg.arange(0, 5, 0), ValueError, "step must be nonzero"),
    _case("arange-nan-end", lambda: mg.arange(0, NAN), ValueError, "arange"),
    _case("linspace-negative-steps", lambda: mg.linspace(0, 1, -1),
          ValueError, "steps must be a non-negative"),
    _case("randn-bad-generator", lambda: mg.randn(2, generator=5), TypeError, "generator"),
    _case("Generator-negative-seed", lambda: mg.Generator(-1), ValueError, "seed must be a non-negative int"),
    _case("set_default_dtype-int", lambda: mg.set_default_dtype(np.int32), TypeError, "int32"),
    _case("set_num_threads-0", lambda: mg.set_num_threads(0), ValueError, r"1 <= n"),
    _case("set_num_threads-float", lambda: mg.set_num_threads(1.5), TypeError, "expected an int, got float"),
    _case("tensor-int-dtype-int8", lambda: mg.tensor([1, 2], dtype=np.int8), TypeError, "int8"),
    _case("tensor-int-requires-grad", lambda: mg.tensor([1, 2], requires_grad=True), RuntimeError,
          "Only Tensors of floating point and complex dtype can require gradients"),
    _case("tensor-uint64-out-of-range", lambda: mg.tensor(np.array([2 ** 63], np.uint64)), ValueError,
          "out of the int64 range"),
    _case("tensor-float16", lambda: mg.tensor(np.ones(2, np.float16)), TypeError, "float16"),
    _case("tensor-complex", lambda: mg.tensor(np.array([1j])), TypeError, "complex128"),
    _case("tensor-complex-with-dtype", lambda: mg.tensor(np.array([1j]), dtype=mg.float32),
          TypeError, "complex"),
    _case("tensor-python-complex", lambda: mg.tensor(1j), TypeError, "complex"),
    _case("tensor-object-array", lambda: mg.tensor(np.array([object()])), TypeError, "object"),
    _case("tensor-str", lambda: mg.tensor("abc"), TypeError, "<U3"),
    _case("tensor-bytes", lambda: mg.tensor(b"abc"), TypeError, "S3"),
    _case("tensor-None", lambda: mg.tensor(None), TypeError, "NoneType"),
    _case("tensor-dict", lambda: mg.tensor({"a": 1}), TypeError, "dict"),
    _case("tensor-ragged-list", lambda: mg.tensor([[1, 2], [3]]), ValueError, "inhomogeneous"),
    _case("tensor-datetime", lambda: mg.tensor(np.array(["2020-01-01"], "datetime64[D]")),
          TypeError, "datetime64"),
    _case("tensor-torch-complex", lambda: mg.tensor(torch.ones(2, dtype=torch.complex64)), TypeError,
          "complex"),
    _case("tensor-longdouble", lambda: mg.tensor(np.ones(2, np.longdouble)),
          TypeError, "float128|longdouble"),
    _case("Parameter-int-array", lambda: nn.Parameter(np.arange(3)), RuntimeError,
          "Only Tensors of floating point and complex dtype can require gradients"),
    _case("to-int8-dtype", lambda: mg.ones(2).to(np.int8), TypeError, "int8"),
    _case("data-setter-int16-array", lambda: setattr(mg.ones(3), "data", np.arange(3, dtype=np.int16)),
          TypeError, "int16"),
    _case("data-setter-int-on-requires-grad", lambda: setattr(mg.ones(3, requires_grad=True), "data",
                                                              np.arange(3)),
          RuntimeError, "floating point"),
    _case("data-setter-complex", lambda: setattr(mg.ones(3), "data", np.ones(3, complex)),
          TypeError, "complex"),
    _case("copy_-complex", lambda: mg.ones(3).copy_(np.ones(3, complex)), TypeError, "complex"),
    _case("copy_-wrong-shape", lambda: mg.ones(3).copy_(np.ones(4)), ValueError, r"\(4,\).*\(3,\)"),
    _case("fill_-str", lambda: mg.ones(3).fill_("a"), TypeError, "str"),
    _case("setitem-str-value", lambda: mg.ones(3).__setitem__(0, "a"), TypeError, "str"),
    _case("setitem-on-requires-grad", lambda: mg.ones(3, requires_grad=True).__setitem__(0, 1.0),
          RuntimeError, "requires grad"),
    _case("inplace-leaf-requires-grad", lambda: mg.ones(3, requires_grad=True).zero_(),
          RuntimeError, "leaf Variable that requires grad"),
    _case("item-of-many", lambda: mg.ones(2, 3).item(), ValueError, "6 elements"),
    _case("bool-of-many", lambda: bool(mg.ones(2)), RuntimeError, "ambiguous"),
    _case("len-of-0d", lambda: len(mg.tensor(1.0)), TypeError, "0-d"),
    # ---- elementwise ops ------------------------------------------------------------------------------
    _case("add-shapes", lambda: mg.ones(2, 3) + mg.ones(4, 5), ValueError, r"\(2, 3\) and \(4, 5\)"),
    _case("mul-shapes", lambda: mg.ones(3) * mg.ones(4), ValueError, r"mul.*\(3,\) and \(4,\)"),
    _case("where-shapes", lambda: mg.where(np.ones(4, bool), mg.ones(3), mg.ones(3)), ValueError, r"\(4,\)"),
    _case("masked_fill-shapes", lambda: mg.ones(2, 3).masked_fill(np.ones(4, bool), 0.0), ValueError,
          r"\(4,\).*\(2, 3\)"),
    _case("add-str", lambda: mg.ones(3) + "x", TypeError, "<U1"),
    _case("add-None", lambda: mg.ones(3) + None, TypeError, "object"),
    _case("add-complex-scalar", lambda: mg.ones(3) + 1j, TypeError, "complex"),
    _case("add-complex-array", lambda: mg.ones(3) + np.ones(3, complex), TypeError, "complex"),
    _case("sub-object-array", lambda: mg.ones(3) - np.array([object()] * 3), TypeError, "object"),
    _case("pow-str", lambda: mg.ones(3) ** "x", TypeError, "<U1"),
    _case("exp-float16-array", lambda: mg.exp(np.ones(3, np.float16)), TypeError, "float16 array"),
    _case("tanh-object", lambda: mg.tanh(object()), TypeError, "object"),
    _case("neg-str", lambda: mg.neg("x"), TypeError, "<U1"),
    _case("where-no-tensor", lambda: mg.where(np.ones(3, bool), 1.0, 2.0),
          TypeError, "at least one minigrad Tensor"),
    _case("where-str-condition", lambda: mg.where("x", mg.ones(3), mg.ones(3)), TypeError, "bool array-like"),
    _case("masked_fill-str-value", lambda: mg.ones(3).masked_fill(np.ones(3, bool), "x"), TypeError, "str"),
    _case("clamp-no-bounds", lambda: mg.ones(3).clamp(), ValueError, "at least one of min and max"),
    _case("clamp-str-bound", lambda: mg.ones(3).clamp("a"), TypeError, "clamp"),
    # ---- reductions -----------------------------------------------------------------------------------
    _case("sum-dim-out-of-range", lambda: mg.ones(2, 3).sum(5), IndexError, r"range of \[-2, 1\].*5"),
    _case("sum-dim-str", lambda: mg.ones(2, 3).sum("x"), TypeError, "dim must be an int"),
    _case("sum-dim-float", lambda: mg.ones(2, 3).sum(1.0), TypeError, "dim must be an int"),
    _case("sum-dim-repeated", lambda: mg.ones(2, 3).sum((0, 0)), ValueError, "repeated"),
    _case("softmax-dim-out-of-range", lambda: mg.ones(2, 3).softmax(2), IndexError, "Dimension out of range"),
    # torch's wording (tests/test_int_bool.py compares with torch's own exceptions)
    _case("max-of-empty", lambda: mg.zeros(0, 3).max(), RuntimeError, r"max\(\): Expected reduction dim to be"),
    _case("max-over-empty-dim", lambda: mg.zeros(0, 3).max(0), IndexError, "dim 0 to have non-zero size"),
    _case("min-over-empty-dim", lambda: mg.zeros(3, 0).min(1), IndexError, "dim 1 to have non-zero size"),
    # ---- matmul ---------------------------------------------------------------------------------------
    _case("matmul-inner", lambda: mg.ones(2, 3) @ mg.ones(4, 5), ValueError, r"\(2, 3\) and \(4, 5\)"),
    _case("matmul-batch", lambda: mg.ones(2, 2, 3) @ mg.ones(3, 3, 4),
          ValueError, r"\(2, 2, 3\) and \(3, 3, 4\)"),
    _case("matmul-0d", lambda: mg.ones(2, 3) @ mg.tensor(1.0), ValueError, "at least 1 dimension"),
    _case("matmul-mixed-dtypes", lambda: mg.ones(2, 3) @ mg.ones(3, 2, dtype=mg.float64), TypeError,
          "different dtypes float32 and float64"),
    _case("matmul-str", lambda: mg.ones(2, 3) @ "x", TypeError, "<U1"),
    # ---- shapes and indexing --------------------------------------------------------------------------
    _case("reshape-size", lambda: mg.ones(2, 3).reshape(4, 2), ValueError, r"\(4, 2\).*\(2, 3\)"),
    _case("reshape-float", lambda: mg.ones(2, 3).reshape(2.0, 3), TypeError, "sizes must be ints"),
    _case("reshape-two-unknown", lambda: mg.ones(2, 3).reshape(-1, -1), ValueError, r"\(-1, -1\)"),
    _case("reshape-minus-two", lambda: mg.ones(2, 3).reshape(-2, 3), ValueError, "-2"),
    _case("view-str", lambda: mg.ones(2, 3).view("a"), TypeError, "sizes must be ints"),
    _case("permute-repeated", lambda: mg.ones(2, 3).permute(0, 0), ValueError, "not a permutation"),
    _case("permute-count", lambda: mg.ones(2, 3).permute(0), ValueError, "1 dims.*2-D"),
    _case("transpose-out-of-range", lambda: mg.ones(2, 3).transpose(0, 2), IndexError, "out of range"),
    _case("T-of-3d", lambda: mg.ones(2, 3, 4).T, ValueError, "2-D"),
    _case("expand-incompatible", lambda: mg.ones(2, 3).expand(4, 3), ValueError, r"\(2, 3\).*\(4, 3\)"),
    _case("expand-too-few", lambda: mg.ones(2, 3).expand(3), ValueError, "number of sizes"),
    _case("squeeze-out-of-range", lambda: mg.ones(2, 3).squeeze(3), IndexError, "out of range"),
    _case("unsqueeze-out-of-range", lambda: mg.ones(2, 3).unsqueeze(4), IndexError, "out of range"),
    _case("flip-out-of-range", lambda: mg.ones(2, 3).flip(2), IndexError, "out of range"),
    _case("cat-empty-list", lambda: mg.cat([]), ValueError, "non-empty list"),
    _case("cat-tensor", lambda: mg.cat(mg.ones(2)), TypeError, "list or tuple of tensors, got Tensor"),
    _case("cat-shapes", lambda: mg.cat([mg.ones(2, 3), mg.ones(2, 4)]), ValueError, r"\(2, 3\).*\(2, 4\)"),
    _case("cat-0d", lambda: mg.cat([mg.tensor(1.0)]), ValueError, "zero-dimensional"),
    _case("cat-complex-array", lambda: mg.cat([np.ones(2, complex), mg.ones(2)]), TypeError, "complex"),
    _case("stack-shapes", lambda: mg.stack([mg.ones(2), mg.ones(3)]), ValueError, r"\(2,\).*\(3,\)"),
    _case("stack-None", lambda: mg.stack([None]), TypeError, "object"),
    _case("split-zero", lambda: mg.ones(4).split(0), ValueError, "must be positive"),
    _case("split-sections", lambda: mg.ones(4).split([1, 2]), ValueError, r"\[1, 2\].*4"),
    _case("split-float", lambda: mg.ones(4).split(1.5), TypeError, "split"),
    _case("chunk-zero", lambda: mg.ones(4).chunk(0), ValueError, "positive int"),
    _case("unbind-0d", lambda: mg.tensor(1.0).unbind(), ValueError, "0-d"),
    _case("index-float", lambda: mg.ones(3)[1.5], TypeError, "not float"),
    _case("index-float-tensor", lambda: mg.ones(3)[mg.tensor([0.0])], IndexError,
          "tensors used as indices must be long, int, byte or bool tensors"),
    _case("index-out-of-bounds", lambda: mg.ones(3)[5], IndexError, "out of bounds"),
    _case("index-float-array", lambda: mg.ones(3)[np.array([0.5])], IndexError, "integer"),
    _case("index-float-list", lambda: mg.ones(3)[[0.0, 1.0]], TypeError, "float64"),
    _case("index-mask-shape", lambda: mg.ones(3)[np.array([True, False])], IndexError, "boolean index"),
    _case("index-too-many", lambda: mg.ones(3)[0, 0], IndexError, "too many indices"),
    _case("gather-out-of-range", lambda: mg.ones(2, 3).gather(1, np.array([[3], [0]])),
          RuntimeError, "index 3 is out of bounds for dimension 1 with size 3"),
    _case("gather-float-index", lambda: mg.ones(2, 3).gather(1, np.array([[0.0]])), TypeError, "integers"),
    _case("gather-rank", lambda: mg.ones(2, 3).gather(1, np.array([0])), ValueError, "1 dims.*2"),
    # ---- autograd -------------------------------------------------------------------------------------
    _case("backward-non-scalar", lambda: (mg.ones(3, requires_grad=True) * 2).backward(), RuntimeError,
          "scalar outputs"),
    _case("backward-empty-non-scalar", lambda: (mg.zeros(0, requires_grad=True) * 2).backward(), RuntimeError,
          "scalar outputs"),
    _case("backward-gradient-shape", lambda: (mg.ones(3, requires_grad=True) * 2).backward(np.ones(4)),
          RuntimeError, r"\(4,\).*\(3,\)"),
    _case("backward-gradient-complex",
          lambda: (mg.ones(3, requires_grad=True) * 2).backward(np.ones(3, complex)),
          TypeError, "complex"),
    _case("backward-no-grad", lambda: mg.ones(3).sum().backward(), RuntimeError, "does not require grad"),
    _case("backward-twice", lambda: _twice(), RuntimeError, "retain_graph=True"),
    _case("autograd.backward-non-tensor", lambda: mg.autograd.backward([1.0]), TypeError, "expects Tensors"),
    _case("autograd.backward-counts", lambda: mg.autograd.backward([mg.ones(1, requires_grad=True).sum()],
                                                                   [None, None]),
          ValueError, "1 tensors but 2 gradients"),
    _case("register_hook-not-callable", lambda: mg.ones(3, requires_grad=True).register_hook("f"), TypeError,
          "callable"),
    _case("hook-returns-wrong-shape", lambda: _hook_returning(mg.ones(5)), RuntimeError,
          r"changed the size of value \(was \(3,\) got \(5,\)\)"),
    _case("retain_grad-no-grad", lambda: mg.ones(2).retain_grad(), RuntimeError, "requires_grad=False"),
    _case("requires_grad_-non-leaf", lambda: (mg.ones(2, requires_grad=True) * 2).requires_grad_(False),
          RuntimeError, "leaf"),
    _case("grad-assign-ndarray", lambda: setattr(_param(3), "grad", np.ones(3)), TypeError, "Tensor"),
    _case("grad-assign-wrong-shape", lambda: setattr(_param(3), "grad", mg.ones(4)), (ValueError,
          RuntimeError), r"\[?\(?4"),
    _case("grad-assign-other-dtype", lambda: setattr(_param(3), "grad", mg.ones(3, dtype=mg.float64)),
          TypeError, "float64"),
    _case("set_grad_enabled-str", lambda: mg.set_grad_enabled("no"), TypeError, "bool"),
    _case("gradcheck-float32",
          lambda: mg.autograd.gradcheck(lambda a: a * 2, (mg.ones(2, requires_grad=True),)),
          TypeError, "float64"),
    _case("gradcheck-nothing-to-check",
          lambda: mg.autograd.gradcheck(lambda a: a * 2, (mg.ones(2, dtype=mg.float64),)),
          ValueError, "no input requires grad"),
    _case("gradcheck-fn-returns-no-tensor",
          lambda: mg.autograd.gradcheck(lambda a: 1.0, (mg.ones(2, dtype=mg.float64, requires_grad=True),)),
          (TypeError, ValueError), "[Tt]ensor"),
    # ---- nn modules -----------------------------------------------------------------------------------
    _case("Linear-negative-features", lambda: nn.Linear(-1, 2),
          ValueError, "in_features must be non-negative, got -1"),
    _case("Linear-float-features", lambda: nn.Linear(2.0, 2), TypeError, "in_features should be of type int"),
    _case("Linear-int-dtype", lambda: nn.Linear(2, 2, dtype=np.int32), TypeError, "int32"),
    _case("Linear-last-dim", lambda: nn.Linear(3, 2)(mg.ones(4, 5)),
          RuntimeError, r"last dimension 3.*\(4, 5\)"),
    _case("Linear-0d-input", lambda: nn.Linear(3, 2)(mg.tensor(1.0)), RuntimeError, "last dimension 3"),
    _case("Linear-float64-input", lambda: nn.Linear(3, 2)(mg.ones(2, 3, dtype=mg.float64)), TypeError,
          "float64 and float32"),
    _case("Linear-list-input", lambda: nn.Linear(3, 2)([[1.0, 2.0, 3.0]]), TypeError, "list"),
    _case("Embedding-float-ids", lambda: nn.Embedding(5, 2)(np.array([1.0])), TypeError, "integers.*float64"),
    _case("Embedding-float-tensor-ids", lambda: nn.Embedding(5, 2)(mg.tensor([1.0])),
          TypeError, "must be integers, got dtype float32"),
    _case("Embedding-bool-ids", lambda: nn.Embedding(5, 2)(np.array([True])), TypeError, "bool"),
    _case("Embedding-id-too-large", lambda: nn.Embedding(5, 2)(np.array([5])), IndexError, "out of range"),
    _case("Embedding-negative-id", lambda: nn.Embedding(5, 2)(np.array([-1])), IndexError, "out of range"),
    _case("Embedding-negative-rows", lambda: nn.Embedding(-1, 2), ValueError, "non-negative"),
    _case("Embedding-padding-idx", lambda: nn.Embedding(5, 2, padding_idx=7), AssertionError, "Padding_idx"),
    _case("Dropout-p-2", lambda: nn.Dropout(2), ValueError, "between 0 and 1.*2"),
    _case("Dropout-p-nan", lambda: nn.Dropout(NAN), ValueError, "between 0 and 1.*nan"),
    _case("Dropout-p-str", lambda: nn.Dropout("a"), ValueError, "between 0 and 1"),
    _case("dropout-list-input", lambda: F.dropout([1.0], 0.5), TypeError, "list"),
    _case("RNNCell-3d", lambda: nn.RNNCell(3, 4)(mg.ones(2, 2, 3)), ValueError, "1D or 2D, got 3D"),
    _case("RNNCell-features", lambda: nn.RNNCell(3, 4)(mg.ones(2, 5)), RuntimeError, "got 5 expected 3"),
    _case("RNNCell-hx-batch", lambda: nn.RNNCell(3, 4)(mg.ones(2, 3), mg.ones(3, 4)),
          RuntimeError, "batch size 2.*3"),
    _case("RNNCell-hx-size", lambda: nn.RNNCell(3, 4)(mg.ones(2, 3), mg.ones(2, 5)),
          RuntimeError, "got 5, expected 4"),
    _case("RNNCell-hx-rank", lambda: nn.RNNCell(3, 4)(mg.ones(2, 3), mg.ones(4)), RuntimeError, "2D.*1D"),
    _case("RNNCell-float64-input", lambda: nn.RNNCell(3, 4)(mg.ones(2, 3, dtype=mg.float64)), TypeError,
          "float64"),
    _case("RNNCell-nonlinearity", lambda: nn.RNNCell(3, 4, nonlinearity="gelu"), ValueError, "gelu"),
    _case("RNN-1d", lambda: nn.RNN(3, 4)(mg.ones(3)), ValueError, "2D or 3D, got 1D"),
    _case("RNN-4d", lambda: nn.RNN(3, 4)(mg.ones(1, 2, 3, 3)), ValueError, "2D or 3D, got 4D"),
    _case("RNN-features", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 4)), RuntimeError, "Expected 3, got 4"),
    _case("RNN-numpy-input", lambda: nn.RNN(3, 4)(np.ones((5, 2, 3), np.float32)), TypeError, "ndarray"),
    _case("RNN-no-steps", lambda: nn.RNN(3, 4)(mg.zeros(0, 2, 3)), ValueError, "no time steps"),
    _case("RNN-float64-input", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3, dtype=mg.float64)), ValueError,
          r"float64.*float32"),
    _case("RNN-h0-shape", lambda: nn.RNN(3, 4, 2)(mg.ones(5, 2, 3), mg.ones(1, 2, 4)), RuntimeError,
          r"\(2, 2, 4\), got \[1, 2, 4\]"),
    _case("RNN-h0-rank", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3), mg.ones(2, 4)), RuntimeError, "3-D.*2-D"),
    # torch's exception types where the two overlap: ValueError for the input, RuntimeError for h0
    _case("RNN-h0-float64", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3), mg.ones(1, 2, 4, dtype=mg.float64)),
          RuntimeError, r"float64.*float32"),
    _case("RNN-h0-numpy", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3), np.ones((1, 2, 4), np.float32)), TypeError,
          "ndarray"),
    _case("RNN-lengths-too-long", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3), lengths=[6, 1]), ValueError,
          r"between 1 and the sequence length 5.*\[6, 1\]"),
    _case("RNN-lengths-zero", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3), lengths=[0, 2]),
          ValueError, "between 1"),
    _case("RNN-lengths-float", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3), lengths=[1.0, 2.0]),
          ValueError, "integers"),
    _case("RNN-lengths-count", lambda: nn.RNN(3, 4)(mg.ones(5, 2, 3), lengths=[1]), ValueError, "2 integers"),
    _case("RNN-dropout-2", lambda: nn.RNN(3, 4, dropout=2), ValueError, r"range \[0, 1\]"),
    _case("RNN-zero-layers", lambda: nn.RNN(3, 4, num_layers=0), ValueError, "num_layers"),
    _case("RNN-zero-hidden", lambda: nn.RNN(3, 0), ValueError, "hidden_size"),
    _case("Module-load-list", lambda: nn.Linear(2, 2).load_state_dict([("weight", np.ones((2, 2)))]),
          TypeError, "dict-like"),
    _case("Module-load-shape",
          lambda: nn.Linear(2, 2).load_state_dict({"weight": np.ones((3, 2)), "bias": np.ones(2)}),
          RuntimeError, r"size mismatch for weight.*\(3, 2\).*\(2, 2\)"),
    _case("Module-load-missing", lambda: nn.Linear(2, 2).load_state_dict({"weight": np.ones((2, 2))}),
          RuntimeError, 'Missing key.*"bias"'),
    _case("Module-load-str-value",
          lambda: nn.Linear(2, 2).load_state_dict({"weight": "ab", "bias": np.ones(2)}),
          RuntimeError, "weight has dtype"),
    _case("Module-load-complex", lambda: nn.Linear(2, 2).load_state_dict({"weight": np.ones((2, 2), complex),
                                                                          "bias": np.ones(2)}),
          RuntimeError, "complex128"),
    _case("Module-register-tensor", lambda: nn.Module().register_parameter("w", mg.ones(2)), TypeError,
          "Parameter or None"),
    _case("Module-train-str", lambda: nn.Linear(1, 1).train("yes"), ValueError, "boolean"),
    _case("Sequential-non-module", lambda: nn.Sequential(5), TypeError, "not a Module"),
    _case("ModuleList-index", lambda: nn.ModuleList([nn.Linear(1, 1)])[3], IndexError, "out of range"),
    # ---- losses ---------------------------------------------------------------------------------------
    _case("MSELoss-reduction", lambda: nn.MSELoss("avg"), ValueError, "avg is not a valid value"),
    _case("mse_loss-shapes", lambda: _quiet(lambda: F.mse_loss(mg.ones(3), mg.ones(4))), ValueError,
          r"\(3,\) and \(4,\)"),
    _case("mse_loss-str-target", lambda: F.mse_loss(mg.ones(3), "abc"), TypeError, "<U3"),
    _case("cross_entropy-float-targets", lambda: F.cross_entropy(mg.ones(2, 3), np.array([0.0, 1.0])),
          TypeError, "integers.*float64"),
    _case("cross_entropy-float-tensor-targets", lambda: F.cross_entropy(mg.ones(2, 3), mg.tensor([0.0, 1.0])),
          TypeError, "must be integers, got dtype float32"),
    _case("cross_entropy-bool-targets", lambda: F.cross_entropy(mg.ones(2, 3), np.array([True, False])),
          TypeError, "bool"),
    _case("cross_entropy-target-too-large", lambda: F.cross_entropy(mg.ones(2, 3), np.array([0, 3])),
          IndexError, "Target 3 is out of bounds"),
    _case("cross_entropy-negative-target", lambda: F.cross_entropy(mg.ones(2, 3), np.array([0, -1])),
          IndexError, "Target -1"),
    _case("cross_entropy-batch", lambda: F.cross_entropy(mg.ones(2, 3), np.array([0, 1, 2])), ValueError,
          r"batch_size \(2\).*\(3\)"),
    _case("cross_entropy-target-rank", lambda: F.cross_entropy(mg.ones(2, 3), np.zeros((2, 1), np.int64)),
          RuntimeError, r"\(N,\).*\(2, 1\)"),
    _case("cross_entropy-0d-input", lambda: F.cross_entropy(mg.tensor(1.0), np.array(0)), ValueError,
          "at least 1 dimension"),
    _case("nll_loss-0d-input", lambda: F.nll_loss(mg.tensor(1.0), np.array(0)),
          ValueError, "at least 1 dimension"),
    _case("cross_entropy-numpy-input", lambda: F.cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1])),
          TypeError, "ndarray"),
    _case("CrossEntropyLoss-weight-shape", lambda: nn.CrossEntropyLoss(weight=np.ones(2))(mg.ones(2, 3),
                                                                                         np.array([0, 1])),
          RuntimeError, "all 3 classes.*\\[2\\]"),
    _case("NLLLoss-reduction", lambda: nn.NLLLoss(reduction="x"), ValueError, "x is not a valid value"),
    # ---- optimisers -----------------------------------------------------------------------------------
    _case("SGD-negative-lr", lambda: optim.SGD([_param(3)], lr=-1), ValueError, "Invalid learning rate: -1"),
    _case("SGD-empty", lambda: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    _case("SGD-tensor", lambda: optim.SGD(_param(3), lr=0.1), TypeError, "iterable of Tensors"),
    _case("SGD-ndarray-param", lambda: optim.SGD([np.ones(3)], lr=0.1), TypeError, "ndarray"),
    _case("SGD-duplicate", lambda: _twice_listed(_param(3)), ValueError, "more than once"),
    _case("SGD-non-leaf", lambda: optim.SGD([mg.ones(3, requires_grad=True) * 2], lr=0.1),
          ValueError, "non-leaf"),
    _case("SGD-negative-momentum", lambda: optim.SGD([_param(3)], lr=0.1, momentum=-1),
          ValueError, "momentum"),
    _case("SGD-nesterov", lambda: optim.SGD([_param(3)], lr=0.1, nesterov=True), ValueError, "Nesterov"),
    _case("Adam-beta-1", lambda: optim.Adam([_param(3)], betas=(1.0, 0.9)),
          ValueError, "beta parameter at index 0"),
    _case("Adam-negative-eps", lambda: optim.Adam([_param(3)], eps=-1), ValueError, "epsilon"),
    _case("AdamW-negative-decay", lambda: optim.AdamW([_param(3)], weight_decay=-1),
          ValueError, "weight_decay"),
    _case("optimizer-load-groups",
          lambda: optim.Adam([_param(3)]).load_state_dict({"state": {}, "param_groups": []}),
          ValueError, "number of parameter groups"),
    _case("optimizer-load-state-shape",
          lambda: optim.Adam([_param(3)]).load_state_dict(
              {"state": {0: {"step": 1, "exp_avg": np.ones(4), "exp_avg_sq": np.ones(3)}},
               "param_groups": [{"params": [0], "lr": 0.1}]}),
          ValueError, r"exp_avg.*\(4,\).*\(3,\)"),
    _case("optimizer-load-index",
          lambda: optim.Adam([_param(3)]).load_state_dict(
              {"state": {5: {"step": 1}}, "param_groups": [{"params": [0], "lr": 0.1}]}),
          ValueError, "parameter 5"),
    # ---- clipping -------------------------------------------------------------------------------------
    _case("clip_grad_norm_-nonfinite",
          lambda: nn.utils.clip_grad_norm_([_with_grad(_param(3), mg.tensor([NAN, 1, 1]))], 1.0,
                                           error_if_nonfinite=True),
          RuntimeError, "non-finite"),
    _case("clip_grad_norm_-str-max",
          lambda: nn.utils.clip_grad_norm_([_with_grad(_param(3), mg.ones(3))], "a"),
          ValueError, "'a'"),
    _case("clip_grad_norm_-ndarray", lambda: nn.utils.clip_grad_norm_([np.ones(3)], 1.0),
          TypeError, "ndarray"),
    _case("clip_grad_value_-str", lambda: nn.utils.clip_grad_value_([_with_grad(_param(3), mg.ones(3))], "a"),
          ValueError, "'a'"),
    # ---- tbptt ----------------------------------------------------------------------------------------
    _case("batchify-zero", lambda: tbptt.batchify(np.arange(10), 0), ValueError, "between 1 and len.*got 0"),
    _case("batchify-too-many", lambda: tbptt.batchify(np.arange(10), 11), ValueError, "got 11"),
    _case("batchify-float", lambda: tbptt.batchify(np.arange(10), 2.0), TypeError, "got 2.0"),
    _case("batchify-scalar", lambda: tbptt.batchify(5, 1), ValueError, "scalar"),
    _case("windows-zero", lambda: list(tbptt.windows(np.zeros((5, 2)), 0)),
          ValueError, "k must be a positive"),
    _case("detach_state-str", lambda: tbptt.detach_state("x"), TypeError, "str"),
    _case("detach_state-dict", lambda: tbptt.detach_state({"h": mg.ones(2)}), TypeError, "dict"),
    _case("run-k1", lambda: tbptt.run(nn.RNN(2, 3), F.mse_loss, np.zeros((5, 1, 2), np.float32), 0),
          ValueError, "k1 must be a positive int"),
    _case("run-k2", lambda: tbptt.run(nn.RNN(2, 3), F.mse_loss, np.zeros((5, 1, 2), np.float32), 3, 2),
          ValueError, "k2 must be >= k1"),
    _case("run-too-short", lambda: tbptt.run(nn.RNN(2, 3), F.mse_loss, np.zeros((1, 1, 2), np.float32), 3),
          ValueError, "at least 2 time steps"),
    _case("run-max_norm-alone",
          lambda: tbptt.run(nn.RNN(2, 3), F.mse_loss, np.zeros((5, 1, 2), np.float32), 3, max_norm=1.0),
          ValueError, "pass an optimizer"),
    # ---- checkpoints ----------------------------------------------------------------------------------
    _case("save-Module", lambda: mg.save(nn.Linear(2, 2), "unused.npz"), TypeError,
          r"Linear.*state_dict\(\)"),
    _case("save-set", lambda: mg.save({"a": {1, 2}}, "unused.npz"), TypeError, r"obj\['a'\] of type set"),
    _case("save-object-array", lambda: mg.save({"a": [np.array([object()])]}, "unused.npz"), TypeError,
          r"obj\['a'\]\[0\].*object"),
    _case("save-tuple-key", lambda: mg.save({(1, 2): 1}, "unused.npz"), TypeError, "key of type tuple"),
    _case("save-cycle", lambda: mg.save(_cycle(), "unused.npz"), ValueError, "contains itself"),
    _case("save-path-int", lambda: mg.save({}, 5), TypeError, "path must be a str or os.PathLike, got int"),
    _case("save-path-bytes", lambda: mg.save({}, b"x.npz"), TypeError, "got bytes"),
    _case("load-path-None", lambda: mg.load(None), TypeError, "got NoneType"),
]


def _twice_listed(p):
    return optim.SGD([p, p], lr=0.1)


def _twice():
    y = (mg.ones(2, requires_grad=True).tanh() * 2).sum()
    y.backward()
    y.backward()


def _hook_returning(value):
    x = mg.ones(3, requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: value)
    y.sum().backward()


def _cycle():
    d = {}
    d["self"] = [d]
    return d


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


@pytest.mark.parametrize("call, exc, match", RAISES)
def test_refused_with_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- huge sizes: a MemoryError or numpy's "array is too big" ValueError, never a crash ------------------
HUGE_CALLS = {
    "zeros": lambda: mg.zeros(HUGE),
    "zeros-overflowing-product": lambda: mg.zeros(HUGE, HUGE),
    "ones": lambda: mg.ones(HUGE, dtype=mg.float64),
    "empty": lambda: mg.empty(HUGE),
    "full": lambda: mg.full((HUGE,), 1.0),
    "randn": lambda: mg.randn(HUGE),
    "rand": lambda: mg.rand(HUGE),
    "eye": lambda: mg.eye(2**30),
    "arange": lambda: mg.arange(2**50),
    "linspace": lambda: mg.linspace(0, 1, 2**50),
    "expand-then-clone": lambda: mg.ones(1).expand(HUGE).clone(),
    "broadcast-add": lambda: mg.ones(2**20, 1) + mg.ones(1, 2**20),
    "matmul-outer": lambda: mg.ones(2**21, 1) @ mg.ones(1, 2**21),
    "Linear": lambda: nn.Linear(2**20, 2**20),
    "Embedding": lambda: nn.Embedding(HUGE, 4),
    "RNN": lambda: nn.RNN(2**20, 2**20),
}


@pytest.mark.parametrize("name", sorted(HUGE_CALLS))
def test_huge_sizes_raise_memory_error(name):
    with pytest.raises((MemoryError, ValueError), match="allocate|too big|Maximum allowed size"):
        HUGE_CALLS[name]()


# ---- NaN and inf propagate as in torch, silently (no numpy RuntimeWarnings) -----------------------------
SPECIAL = [1.0, NAN, 0.0, INF, -INF, -2.0]
FORWARD = {
    "tanh": (mg.tanh, torch.tanh),
    "sigmoid": (mg.sigmoid, torch.sigmoid),
    "exp": (mg.exp, torch.exp),
    "log": (mg.log, torch.log),
    "sqrt": (mg.sqrt, torch.sqrt),
    "relu": (mg.relu, torch.relu),
    "abs": (mg.abs, torch.abs),
    "neg": (mg.neg, torch.neg),
    "pow-half": (lambda x: x ** 0.5, lambda x: x ** 0.5),
    "reciprocal": (lambda x: 1.0 / x, lambda x: 1.0 / x),
    "div-by-zero": (lambda x: x / 0.0, lambda x: x / 0.0),
    "div-by-zero-tensor": (lambda x: x / mg.zeros(6, dtype=x.dtype),
                           lambda x: x / torch.zeros(6, dtype=x.dtype)),
    "zero-div": (lambda x: 0.0 / x, lambda x: 0.0 / x),
    "mul-zero": (lambda x: x * 0.0, lambda x: x * 0.0),
    "clamp": (lambda x: x.clamp(-1, 1), lambda x: x.clamp(-1, 1)),
    "sum": (mg.sum, torch.sum),
    "mean": (mg.mean, torch.mean),
    "max": (mg.max, torch.max),
    "min": (mg.min, torch.min),
    "softmax": (lambda x: x.softmax(0), lambda x: x.softmax(0)),
    "log_softmax": (lambda x: x.log_softmax(0), lambda x: x.log_softmax(0)),
    "logsumexp": (lambda x: x.logsumexp(0), lambda x: x.logsumexp(0)),
    "matmul": (lambda x: x @ x.flip(0), lambda x: x @ x.flip(0)),
}
ROWS = {
    "with-nan-and-inf": SPECIAL,
    "with-+inf": [1.0, INF, 0.5, 2.0, -1.0, 0.0],
    "with--inf": [1.0, -INF, 0.5, 2.0, -1.0, 0.0],
    "all--inf": [-INF] * 6,
    "overflowing": [1000.0, -1000.0, 88.0, 710.0, -750.0, 1e300],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", sorted(ROWS))
@pytest.mark.parametrize("op", sorted(FORWARD))
def test_nan_and_inf_propagate_like_torch(op, row, dtype):
    mine, theirs = FORWARD[op]
    with np.errstate(over="ignore"):  # the overflowing row becomes inf in float32, on purpose
        values = np.array(ROWS[row]).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings have their own test below
        out = mine(mg.tensor(values))
    expected = theirs(torch.tensor(values))
    # nan and inf where torch has them; finite values to the last bits of the dtype
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert out.dtype == dtype


@pytest.mark.parametrize("op", sorted(FORWARD))
def test_special_values_raise_no_numpy_warnings(op):
    """nan and inf are ordinary values, as in torch: log and sqrt already silence numpy's RuntimeWarnings, and
    every other op should too, or training logs fill with noise that hides real warnings."""
    mine, _ = FORWARD[op]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for row in ROWS.values():
            mine(mg.tensor(row, dtype=mg.float64))


def test_division_by_zero_gives_inf_and_nan_at_every_size():
    """Small arrays take a fast loop and large ones numpy's; both must give IEEE results."""
    for n in (1, 7, 100_000):
        for dtype in (np.float32, np.float64):
            num = np.tile(np.array([1.0, -1.0, 0.0], dtype), n)
            out = (mg.tensor(num) / mg.zeros(3 * n, dtype=dtype)).numpy()
            np.testing.assert_array_equal(out[:3], [INF, -INF, NAN], err_msg=f"n={n} {dtype}")


def test_nan_gradient_flows_back_like_torch():
    x = mg.tensor([1.0, NAN, 2.0], dtype=mg.float64, requires_grad=True)
    ((x * 3).tanh() * x).sum().backward()
    tx = torch.tensor([1.0, NAN, 2.0], dtype=torch.float64, requires_grad=True)
    ((tx * 3).tanh() * tx).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_masked_logits_train_like_torch():
    """-inf entries (masked attention-style logits) give exact zeros in softmax and in the gradient."""
    logits = np.array([[1.0, -INF, 2.0], [-INF, 0.5, -INF]])
    upstream = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    for name in ("softmax", "log_softmax"):
        x = mg.tensor(logits, requires_grad=True)
        tx = torch.tensor(logits, requires_grad=True)
        out, t_out = getattr(x, name)(1), getattr(tx, name)(1)
        np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-15)
        mask = np.isfinite(upstream * out.numpy())  # torch's gradient at -inf log-probabilities is exactly 0
        out.backward(upstream * mask)
        t_out.backward(torch.tensor(upstream * mask))
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("targets", [[-100, -100], []])
def test_cross_entropy_with_nothing_to_count_is_nan_like_torch(targets):
    n = len(targets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(mg.ones(n, 3), np.array(targets, dtype=np.int64))
    assert math.isnan(loss.item())
    t_targets = torch.tensor(targets, dtype=torch.long)
    assert math.isnan(torch.nn.functional.cross_entropy(torch.ones(n, 3), t_targets))


def test_nan_input_to_rnn_and_training_step_propagates():
    rnn = nn.RNN(3, 4)
    out, h = rnn(mg.tensor(np.full((2, 1, 3), NAN, np.float32)))
    assert np.isnan(out.numpy()).all() and np.isnan(h.numpy()).all()
    p = _with_grad(_param(3), mg.tensor([NAN, 1.0, 1.0]))
    optim.Adam([p], lr=0.1).step()
    assert np.isnan(p.numpy()[0]) and np.isfinite(p.numpy()[1:]).all()


def test_clipping_infinite_gradients_matches_torch():
    p = _with_grad(_param(3), mg.tensor([INF, 1.0, 1.0]))
    tp = torch.nn.Parameter(torch.zeros(3))
    tp.grad = torch.tensor([INF, 1.0, 1.0])
    total = nn.utils.clip_grad_norm_([p], 1.0)
    t_total = torch.nn.utils.clip_grad_norm_([tp], 1.0)
    assert total.item() == t_total.item() == INF
    np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())


# ---- empty tensors: the same shapes, values and gradients as torch ---------------------------------------
EMPTY = {
    "add-broadcast": (lambda a: a + a[:1], lambda a: a + a[:1], (0, 3)),
    "tanh": (mg.tanh, torch.tanh, (0, 3)),
    "sum": (lambda a: a.sum(), lambda a: a.sum(), (0, 3)),
    "sum-dim0": (lambda a: a.sum(0), lambda a: a.sum(0), (0, 3)),
    "mean-dim1": (lambda a: a.mean(1), lambda a: a.mean(1), (0, 3)),
    "max-dim1": (lambda a: a.max(1)[0], lambda a: a.max(1)[0], (0, 3)),
    "softmax-dim0": (lambda a: a.softmax(0), lambda a: a.softmax(0), (0, 3)),
    "softmax-dim1": (lambda a: a.softmax(1), lambda a: a.softmax(1), (0, 3)),
    "log_softmax": (lambda a: a.log_softmax(1), lambda a: a.log_softmax(1), (0, 3)),
    "logsumexp-over-empty": (lambda a: a.logsumexp(0), lambda a: a.logsumexp(0), (0, 3)),
    "logsumexp-of-empty-rows": (lambda a: a.logsumexp(1), lambda a: a.logsumexp(1), (0, 3)),
    "matmul-empty-rows": (lambda a: a @ a.T, lambda a: a @ a.T, (0, 3)),
    "matmul-empty-inner": (lambda a: a.T @ a, lambda a: a.T @ a, (0, 3)),
    "matmul-batched-empty-inner": (lambda a: a.reshape(1, 3, 0) @ a.reshape(1, 0, 3),
                                   lambda a: a.reshape(1, 3, 0) @ a.reshape(1, 0, 3), (0, 3)),
    "matmul-batched-empty-rows": (lambda a: a.reshape(2, 0, 3) @ mg.ones(3, 4, dtype=mg.float64),
                                  lambda a: a.reshape(2, 0, 3) @ torch.ones(3, 4, dtype=a.dtype), (0, 3)),
    "flatten-around-empty": (lambda a: a.flatten(0, 0), lambda a: a.flatten(0, 0), (1, 0)),
    "flatten-after-empty": (lambda a: a.reshape(2, 0, 3).flatten(2), lambda a: a.reshape(2, 0, 3).flatten(2),
                            (0, 3)),
    "cat": (lambda a: mg.cat([a, a], 0), lambda a: torch.cat([a, a], 0), (0, 3)),
    "stack": (lambda a: mg.stack([a, a], 1), lambda a: torch.stack([a, a], 1), (0, 3)),
    "transpose-reshape": (lambda a: a.T.reshape(3, 0, 1), lambda a: a.T.reshape(3, 0, 1), (0, 3)),
    "index-empty-list": (lambda a: a[np.array([], dtype=np.int64)],
                         lambda a: a[torch.tensor([], dtype=torch.long)], (4, 3)),
    "gather-empty": (lambda a: a.gather(1, np.zeros((4, 0), np.int64)),
                     lambda a: a.gather(1, torch.zeros(4, 0, dtype=torch.long)), (4, 3)),
}


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_empty_tensors_like_torch(name):
    mine, theirs, shape = EMPTY[name]
    check_op(mine, theirs, [np.zeros(shape)], np.float64)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_chunk_of_an_empty_dimension_gives_k_pieces_like_torch(k):
    pieces = mg.zeros(0, 2).chunk(k, 0)
    assert [p.shape for p in pieces] == [tuple(p.shape) for p in torch.zeros(0, 2).chunk(k, 0)]


def test_split_and_unbind_of_empty_dimensions_like_torch():
    assert len(mg.zeros(0).split(2)) == len(torch.zeros(0).split(2)) == 1
    assert mg.zeros(2, 0).unbind(1) == () == torch.zeros(2, 0).unbind(1)


def test_nn_on_an_empty_batch_like_torch():
    mg.manual_seed(0)
    rnn = nn.RNN(3, 4, num_layers=2)
    out, h = rnn(mg.zeros(5, 0, 3))
    assert out.shape == (5, 0, 4) and h.shape == (2, 0, 4)
    assert nn.Linear(3, 2)(mg.zeros(0, 3)).shape == (0, 2)
    assert nn.Embedding(5, 2)(np.zeros(0, np.int64)).shape == (0, 2)
    assert nn.RNNCell(3, 4)(mg.zeros(0, 3)).shape == (0, 4)
    assert math.isnan(F.mse_loss(mg.zeros(0), mg.zeros(0)).item())


# ---- weak operands and mixed precision ---------------------------------------------------------------
@pytest.mark.parametrize("other", [np.arange(3), np.array([True, False, True]), 2, 2.5, True, np.float64(2.0),
                                   [1.0, 2.0, 3.0]], ids=["int-array", "bool-array", "int", "float", "bool",
                                                         "np.float64", "list"])
def test_non_tensor_operands_take_the_tensor_dtype(other):
    """Python scalars, lists and integer/bool arrays are weak: a float32 tensor stays float32."""
    x = mg.ones(3, requires_grad=True)
    for out in (x + other, other * x, x - other, mg.where(np.ones(3, bool), x, other)):
        assert out.dtype == mg.float32
    out.sum().backward()
    assert x.grad.dtype == mg.float32


def test_python_lists_become_the_default_dtype_everywhere():
    assert mg.tensor([1.0, 2.0]).dtype == mg.float32
    assert mg.exp([1.0, 2.0]).dtype == mg.float32
    assert (mg.ones(2, 3) @ [[1.0], [2.0], [3.0]]).shape == (2, 1)


def test_mixed_precision_promotes_elementwise_and_keeps_each_gradient_dtype():
    a = mg.ones(2, 3, requires_grad=True)
    b = mg.ones(3, dtype=mg.float64, requires_grad=True)
    out = a * b + mg.cat([a, b.reshape(1, 3)]).sum()
    assert out.dtype == mg.float64
    out.sum().backward()
    assert a.grad.dtype == mg.float32 and b.grad.dtype == mg.float64
    assert mg.stack([a[0], b]).dtype == mg.float64


def test_mixed_precision_losses_and_clipping():
    assert F.mse_loss(mg.ones(3), mg.ones(3, dtype=mg.float64)).dtype == mg.float64
    p32 = _with_grad(_param(2), mg.ones(2))
    p64 = _with_grad(_param(2, dtype=mg.float64), mg.ones(2, dtype=mg.float64))
    total = nn.utils.clip_grad_norm_([p32, p64], 1.0)
    assert total.item() == pytest.approx(2.0)
    assert p32.grad.dtype == mg.float32 and p64.grad.dtype == mg.float64


# ---- checkpoints: files that are not minigrad checkpoints --------------------------------------------------
def _doc(root, version=1, fmt="minigrad-checkpoint"):
    """The structure entry of a checkpoint, hand-made."""
    return {"__minigrad__": np.array(json.dumps({"format": fmt, "version": version, "root": root}))}


ARRAY_NODE = {"k": "array", "a": "a0"}
# name: (the archive's entries, what the error must say)
BAD_FILES = {
    "plain-npz": ({"a": np.ones(3)}, "no '__minigrad__' entry"),
    "newer-version": (_doc(None, version=99), "version 99.*upgrade"),
    "other-format": (_doc(None, fmt="other"), "unexpected structure header"),
    "bad-json": ({"__minigrad__": np.array("{not json")}, "not valid JSON"),
    "structure-not-a-string": ({"__minigrad__": np.ones(3)}, "not a JSON string"),
    "missing-array": (_doc(ARRAY_NODE), "missing array entry"),
    "extra-array": ({**_doc(1), "a0": np.ones(2)}, r"does not use the entries \['a0'\]"),
    "array-used-twice": ({**_doc({"k": "list", "v": [ARRAY_NODE] * 2}), "a0": np.ones(2)},
                         "referred to twice"),
    "int8-tensor": ({**_doc({"k": "tensor", "a": "a0", "grad": False}), "a0": np.arange(3, dtype=np.int8)},
                    "not one of minigrad's"),
    "int-tensor-with-grad": ({**_doc({"k": "tensor", "a": "a0", "grad": True}), "a0": np.arange(3)},
                             "requires_grad flag"),
    "unknown-kind": (_doc({"k": "pickle"}), "unknown node kind 'pickle'"),
    "malformed-dict": (_doc({"k": "dict", "v": [[1]]}), "malformed dict item"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_load_refuses_archives_minigrad_did_not_write(tmp_path, name):
    entries, match = BAD_FILES[name]
    path = tmp_path / "bad.npz"
    with open(path, "wb") as f:
        np.savez(f, **entries)
    with pytest.raises(CheckpointError, match=r"bad\.npz.*" + match):
        mg.load(path)


def test_load_refuses_a_single_npy_array(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.ones(3))
    with pytest.raises(CheckpointError, match=r"array\.npz.*single \.npy array"):
        mg.load(path)


def test_load_missing_file_or_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        mg.load(tmp_path / "nothing.npz")
    with pytest.raises(IsADirectoryError):
        mg.load(tmp_path)


def test_save_into_missing_directory_or_onto_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mg.save({}, tmp_path / "missing" / "x.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        mg.save({}, tmp_path)
    assert list(tmp_path.iterdir()) == []
