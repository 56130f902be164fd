"""Losses and (log-)softmax against torch.nn.functional: values and input gradients."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from nn_torch_helpers import assert_close, pair

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
