"""Losses and (log-)softmax against torch.nn.functional: values and input gradients."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from nn_torch_helpers import assert_close, pair, tol

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F


def _check(fn, tfn, x_np, *args, dtype=np.float64, **kwargs):
    """fn(x, ...) and torch's tfn(x, ...) agree in value and in the gradient of a weighted sum."""
    x, tx = pair(x_np.astype(dtype), requires_grad=True)
    out = fn(x, *args, **kwargs)
    def to_torch(a):
        if not isinstance(a, np.ndarray):
            return a
        return torch.from_numpy(a.astype(dtype) if a.dtype.kind == "f" else a)

    tout = tfn(tx, *[to_torch(a) for a in args], **{k: to_torch(v) for k, v in kwargs.items()})
    w = np.random.default_rng(9).standard_normal(tout.shape).astype(dtype)
    (out * mg.tensor(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    assert_close(out, tout, dtype, "value")
    assert_close(x.grad, tx.grad, dtype, "grad")
    return out


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mse_loss(reduction, dtype):
    rng = np.random.default_rng(0)
    target = rng.standard_normal((4, 3)).astype(dtype)
    _check(F.mse_loss, TF.mse_loss, rng.standard_normal((4, 3)), target, reduction=reduction, dtype=dtype)
    _check(nn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction), rng.standard_normal((4, 3)), target,
           dtype=dtype)
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(mg.zeros(2, 3), mg.zeros(3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mse_loss_is_one_node_with_both_gradients(reduction, dtype):
    """Equal shapes and dtypes: one MseLossBackward node (as in torch); a target that requires grad gets
    -d/dinput; large inputs (a sequence model's output) against torch."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((64, 8, 33)).astype(dtype), rng.standard_normal((64, 8, 33)).astype(dtype)
    x, t = mg.tensor(a, requires_grad=True), mg.tensor(b, requires_grad=True)
    tx, tt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out, ref = F.mse_loss(x, t, reduction=reduction), TF.mse_loss(tx, tt, reduction=reduction)
    assert out.grad_fn.name() == "MseLossBackward"
    w = rng.standard_normal(ref.shape).astype(dtype)
    out.backward(w)
    ref.backward(torch.from_numpy(w))
    assert_close(out, ref, dtype, "value")
    assert_close(x.grad, tx.grad, dtype, "input grad")
    assert_close(t.grad, tt.grad, dtype, "target grad")
    with mg.no_grad():
        assert F.mse_loss(x, t, reduction=reduction).grad_fn is None


def _mse_pair(a, b):
    """Tensors of a and b (their layout kept) and torch copies, all four requiring grad."""
    return (mg.tensor(a, requires_grad=True), mg.tensor(b, requires_grad=True),
            torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_mse_loss_large_input_against_torch(reduction, dtype, layout):
    """A (64, 32, 256) input and target (the kernel's sum split over threads), also as transposed views: the
    value and both gradients as torch's, and the value the exact mean or sum of squares of the dtype's
    difference (math.fsum) rounded once to the dtype (accumulated in double, float32 too)."""
    rng = np.random.default_rng(11)
    a = (rng.standard_normal((64, 32, 256)) * rng.uniform(0.1, 10, (64, 1, 1))).astype(dtype)
    b = rng.standard_normal((64, 32, 256)).astype(dtype)
    if layout == "transposed":
        a, b = a.transpose(2, 0, 1), b.transpose(2, 0, 1)
    x, t, tx, tt = _mse_pair(a, b)
    out, ref = F.mse_loss(x, t, reduction=reduction), TF.mse_loss(tx, tt, reduction=reduction)
    assert out.shape == () and out.data.dtype == dtype and out.grad_fn.name() == "MseLossBackward"
    d = np.subtract(a, b).astype(np.float64).ravel()
    exact = math.fsum(d * d) / (d.size if reduction == "mean" else 1)
    rtol = np.finfo(dtype).eps if dtype is np.float32 else 1e-13
    assert abs(float(out.item()) - exact) <= rtol * exact, (out.item(), exact)
    assert_close(out, ref, dtype, "value")
    w = np.asarray(rng.standard_normal(), dtype)
    out.backward(w)
    ref.backward(torch.from_numpy(w))
    assert x.grad.shape == a.shape and t.grad.shape == b.shape and x.grad.data.dtype == dtype
    assert_close(x.grad, tx.grad, dtype, "input grad")
    assert_close(t.grad, tt.grad, dtype, "target grad")
    scale = 2 * float(w) / (d.size if reduction == "mean" else 1)
    np.testing.assert_allclose(x.grad.data, np.subtract(a, b) * scale, **tol(dtype))
    np.testing.assert_array_equal(t.grad.data, -x.grad.data)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (4, 0, 2)])
def test_mse_loss_empty_input_against_torch(reduction, dtype, shape):
    """As torch: the mean of nothing is nan, the sum 0, in the dtype; empty gradients of the operands'
    shapes and dtype; no warnings."""
    a = np.zeros(shape, dtype)
    x, t, tx, tt = _mse_pair(a, a.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, ref = F.mse_loss(x, t, reduction=reduction), TF.mse_loss(tx, tt, reduction=reduction)
        out.backward()
        ref.backward()
    assert out.shape == () and out.data.dtype == dtype
    if reduction == "mean":
        assert math.isnan(out.item()) and math.isnan(ref.item())
    else:
        assert out.item() == 0.0 == ref.item()
    for g, tg in ((x.grad, tx.grad), (t.grad, tt.grad)):
        assert g.shape == shape == tuple(tg.shape) and g.data.dtype == dtype


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mse_loss_inf_and_nan_like_torch(reduction, dtype):
    """inf and nan are values, as in torch, without warnings: inf - finite gives inf, nan and inf - inf nan,
    in the value and the gradients; in a small input and anywhere in a large one."""
    inf, nan = np.inf, np.nan
    cases = [([inf, 1.0], [1.0, 2.0]), ([1.0, 2.0], [-inf, 2.0]), ([nan, 1.0], [1.0, 1.0]),
             ([inf, 1.0], [inf, 1.0]), ([inf, -inf], [0.0, 0.0])]
    rng = np.random.default_rng(12)
    big_a, big_b = rng.standard_normal((2, 64, 32, 256)).astype(dtype)
    for where, value in (((0, 0, 0), inf), ((40, 17, 99), -inf), ((63, 31, 255), nan)):
        a = big_a.copy()
        a[where] = value
        cases.append((a, big_b))
    for a, b in cases:
        x, t, tx, tt = _mse_pair(np.array(a, dtype), np.array(b, dtype))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out, ref = F.mse_loss(x, t, reduction=reduction), TF.mse_loss(tx, tt, reduction=reduction)
            out.backward()
            ref.backward()
        assert out.item() == ref.item() or (math.isnan(out.item()) and math.isnan(ref.item())), out.item()
        assert_close(x.grad, tx.grad, dtype, "input grad")
        assert_close(t.grad, tt.grad, dtype, "target grad")


def test_mse_loss_needs_a_tensor_input():
    with pytest.raises(TypeError, match="mse_loss: input must be a minigrad Tensor"):
        F.mse_loss(np.zeros(3), mg.zeros(3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_2d_with_weights_and_ignore_index(reduction):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 5))
    target = np.array([0, 4, 2, -100, 1, 4])
    weight = rng.uniform(0.5, 2.0, 5)
    _check(F.cross_entropy, TF.cross_entropy, logits, target, reduction=reduction)
    _check(F.cross_entropy, TF.cross_entropy, logits, target, weight=weight, reduction=reduction)
    _check(F.cross_entropy, TF.cross_entropy, logits, np.abs(target) % 5, ignore_index=4, weight=weight,
           reduction=reduction, dtype=np.float32)
    logp = rng.standard_normal((6, 5))
    _check(F.nll_loss, TF.nll_loss, logp, np.array([1, 1, 0, 3, 2, 4]), weight=weight, reduction=reduction)


def test_cross_entropy_other_shapes_and_modules():
    rng = np.random.default_rng(2)
    # (N, C, d): class scores per time step, the layout of a sequence model's output after a transpose
    _check(F.cross_entropy, TF.cross_entropy, rng.standard_normal((3, 4, 5)), rng.integers(0, 4, (3, 5)))
    _check(F.cross_entropy, TF.cross_entropy, rng.standard_normal(4), np.array(2))
    _check(nn.CrossEntropyLoss(ignore_index=1), torch.nn.CrossEntropyLoss(ignore_index=1),
           rng.standard_normal((5, 3)), np.array([0, 1, 2, 1, 0]))
    _check(nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"),
           rng.standard_normal((5, 3)), np.array([0, 1, 2, 1, 0]))
    loss = F.cross_entropy(mg.zeros(2, 3), [0, 2])  # lists are fine for targets
    np.testing.assert_allclose(loss.item(), np.log(3), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_family_is_stable_for_large_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [500.0, 501.0, 499.0], [-1e3, -1e3 + 1, -1e3 - 2]])
    for dim in (0, 1):
        _check(F.log_softmax, TF.log_softmax, logits, dim, dtype=dtype)
        _check(F.softmax, TF.softmax, logits, dim, dtype=dtype)
    out = _check(F.cross_entropy, TF.cross_entropy, logits, np.array([2, 0, 1]), dtype=dtype)
    assert np.isfinite(out.data).all()


def test_loss_errors():
    with pytest.raises(IndexError, match="Target 3 is out of bounds."):
        F.cross_entropy(mg.zeros(2, 3), np.array([0, 3]))
    with pytest.raises(IndexError, match="Target -2 is out of bounds."):
        F.nll_loss(mg.zeros(2, 3), np.array([0, -2]))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(2\) to match target batch_size \(3\)"):
        F.cross_entropy(mg.zeros(2, 3), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.mse_loss(mg.zeros(2), mg.zeros(2), reduction="foo")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(mg.zeros(2, 3), mg.zeros(2))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(mg.zeros(2, 3), np.array([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="weight"):
        F.cross_entropy(mg.zeros(2, 3), [0, 1], weight=np.ones(2))
