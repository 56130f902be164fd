"""Tensor creation, dtype rules, conversions and the bad-input behaviour of the core."""
import numpy as np
import pytest
import torch

import minigrad as mg


def test_dtype_rules_for_creation():
    assert mg.tensor([1, 2]).dtype == np.int64              # Python ints are int64, as in torch
    assert mg.tensor([1.0, 2]).dtype == np.float32          # Python floats default to float32
    assert mg.tensor(3.0).dtype == np.float32
    assert mg.tensor(np.ones(2)).dtype == np.float64        # numpy float input keeps its dtype
    assert mg.tensor(np.ones(2, np.float32)).dtype == np.float32
    assert mg.tensor(np.arange(3), dtype=mg.float64).dtype == np.float64
    assert mg.float32 == np.float32 and mg.float64 == np.float64


@pytest.mark.parametrize("bad", [np.array([1 + 2j]), np.array(["a"]), np.array([object()], dtype=object)])
def test_unsupported_arrays_rejected(bad):
    with pytest.raises(TypeError, match="float32, float64, int32, int64 or bool"):
        mg.tensor(bad)


@pytest.mark.parametrize("bad", [[1 + 1j], "text", [[1, 2], [3]], {"a": 1}])
def test_bad_python_data_rejected(bad):
    with pytest.raises((TypeError, ValueError)):
        mg.tensor(bad)


def test_bad_dtype_argument():
    with pytest.raises(TypeError, match="float32, float64, int32, int64 or bool; got dtype int16"):
        mg.tensor([1.0], dtype=np.int16)
    with pytest.raises(TypeError):
        mg.zeros(2, dtype="complex64")


def test_tensor_copies_and_numpy_shares():
    a = np.ones(3)
    t = mg.tensor(a)
    a[0] = 5
    assert t.data[0] == 1
    t2 = mg.tensor([1.0, 2.0], requires_grad=True)
    assert np.shares_memory(t2.numpy(), t2.data)
    assert np.asarray(t2).dtype == np.float32


def test_metadata_and_repr():
    t = mg.tensor(np.zeros((2, 3)), requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and t.size(1) == 3 and len(t) == 2
    assert "requires_grad=True" in repr(t) and "float64" in repr(t)
    assert "grad_fn=<MulBackward>" in repr(t * 2)
    assert mg.tensor(2.5).item() == 2.5
    with pytest.raises(ValueError, match="cannot be converted"):
        t.item()


def test_factories_and_generator():
    assert mg.zeros(2, 3).shape == (2, 3) and mg.ones((4,)).data.sum() == 4
    assert mg.full((2, 2), 7.0).data.max() == 7 and mg.eye(3).data.trace() == 3
    np.testing.assert_array_equal(mg.arange(5).data, np.arange(5, dtype=np.float32))
    assert mg.zeros_like(mg.ones(2, dtype=mg.float64)).dtype == np.float64
    g1, g2 = mg.Generator(7), mg.Generator(7)
    np.testing.assert_array_equal(mg.randn(3, generator=g1).data, mg.randn(3, generator=g2).data)
    mg.manual_seed(3)
    a = mg.rand(4).data
    mg.manual_seed(3)
    np.testing.assert_array_equal(a, mg.rand(4).data)
    assert mg.randn(2, requires_grad=True).requires_grad
    with pytest.raises(ValueError):
        mg.zeros(-1)
    with pytest.raises(TypeError):
        mg.zeros(2.5)


def test_shape_mismatch_names_both_shapes():
    a, b = mg.ones(2, 3), mg.ones(4)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        a + b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a @ mg.ones(4, 5)
    with pytest.raises(ValueError, match="stack"):
        mg.stack([mg.ones(2), mg.ones(3)])
    with pytest.raises(ValueError, match="cat"):
        mg.cat([mg.ones(2, 2), mg.ones(3, 3)], 1)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(4, 2)


def test_wrong_argument_types():
    with pytest.raises(TypeError):
        mg.ones(2) + "a"
    with pytest.raises(TypeError):
        mg.ones(2) + np.array([1 + 1j, 2])
    with pytest.raises(TypeError):
        mg.ones(2).sum(dim="0")
    with pytest.raises(IndexError):
        mg.ones(2).sum(dim=3)
    with pytest.raises(IndexError):  # torch's type: a float tensor cannot index
        mg.ones(3)[mg.tensor([0.0])]
    with pytest.raises(TypeError):
        mg.ones(3)[1.5]
    with pytest.raises(TypeError):
        mg.stack(mg.ones(3))
    with pytest.raises(TypeError):
        mg.ones(2).register_hook(None) if False else mg.ones(2, requires_grad=True).register_hook(3)
    with pytest.raises(ValueError):
        mg.ones(3).clamp()
    with pytest.raises(TypeError, match="float32 and float64"):
        mg.ones(2, 2) @ mg.ones(2, 2, dtype=mg.float64)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        mg.tensor(2.0) @ mg.ones(2)


def test_int_arrays_are_weak_operands():
    t = mg.ones(3) + np.array([1, 2, 3])
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.data, [2, 3, 4])
    assert (np.ones(3) + mg.ones(3)).dtype == np.float64  # a float64 array operand is a float64 tensor


def test_inplace_rules():
    w = mg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        w.zero_()
    with pytest.raises(RuntimeError, match="in-place"):
        w[0] = 2.0
    with mg.no_grad():
        w.uniform_(-1, 1, generator=mg.Generator(0))
        assert np.all(np.abs(w.data) <= 1)
        w.copy_(np.arange(3))
    np.testing.assert_array_equal(w.data, [0, 1, 2])
    c = mg.zeros(3)
    c[1] = 4.0
    assert c.data[1] == 4.0


def test_comparisons_give_bool_tensors():
    x = mg.tensor([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(x > 0, [False, False, True])
    assert isinstance(x == x, mg.Tensor) and (x == x).dtype == mg.bool
    assert x in [x]  # identity, so containers and hashing keep working


def test_nan_inf_propagate_like_torch():
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30])
    for f, tf in [(mg.tanh, torch.tanh), (mg.relu, torch.relu), (mg.sigmoid, torch.sigmoid),
                  (mg.exp, torch.exp)]:
        np.testing.assert_array_equal(f(mg.tensor(vals)).data, tf(torch.tensor(vals)).numpy())
    assert np.signbit(mg.tanh(mg.tensor(np.array([-0.0]))).data[0])


def test_empty_tensors():
    x = mg.zeros(0, 3, requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    assert y.item() == 0 and x.grad.shape == (0, 3)
    assert (mg.zeros(0, 3) @ mg.zeros(3, 2)).shape == (0, 2)
    np.testing.assert_array_equal((mg.zeros(2, 0) @ mg.zeros(0, 3)).data, np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="Expected reduction dim to be specified"):
        mg.zeros(0).max()


def test_config_reports_the_build():
    cfg = mg.config()
    for key in ("version", "backend", "isa", "parallel", "num_threads"):
        assert key in cfg, key
    n = mg.get_num_threads()
    mg.set_num_threads(1)
    assert mg.get_num_threads() == 1
    mg.set_num_threads(n)
    with pytest.raises((ValueError, TypeError)):
        mg.set_num_threads(0)
