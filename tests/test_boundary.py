"""One rule at the tensor boundary: what a Tensor's array may be (native byte order, aligned, float32 or
float64), dtype promotion with 0-d operands, None where a class is expected, and copying and pickling
tensors, graph nodes and models.  torch is the oracle where it accepts the input; numpy where it does not
(torch refuses big-endian arrays).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _misaligned(values):
    """float64 ``values`` in an array whose data starts one byte into its buffer."""
    values = np.asarray(values, dtype=np.float64)
    buf = np.zeros(values.nbytes + 1, np.uint8)
    arr = np.frombuffer(buf.data, dtype=np.float64, offset=1, count=values.size).reshape(values.shape)
    buf[1:] = np.frombuffer(values.tobytes(), np.uint8)
    assert not arr.flags.aligned and np.array_equal(arr, values)
    return arr


def _field(values):
    """float64 ``values`` as a field of a packed structured array (stride 12: not aligned)."""
    values = np.asarray(values, dtype=np.float64)
    rec = np.zeros(values.shape, dtype=[("a", "f8"), ("b", "f4")])
    rec["a"] = values
    arr = rec["a"]
    assert not arr.flags.aligned and np.array_equal(arr, values)
    return arr


def _layouts(values):
    """The same values in a big-endian, a misaligned and a structured-field array."""
    values = np.asarray(values, dtype=np.float64)
    return {"big-endian": values.astype(">f8"), "misaligned": _misaligned(values), "field": _field(values)}


def _plain(arr):
    return arr.dtype.isnative and arr.flags.aligned and arr.dtype in (np.float32, np.float64)


# ---- byte order and layout --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 5000])  # the small-array fast path and numpy's path
@pytest.mark.parametrize("layout", ["big-endian", "misaligned", "field"])
def test_unusual_layouts_give_numpys_numbers_in_every_op(layout, n):
    values = np.linspace(-2.0, 3.0, n)
    arr = _layouts(values)[layout]
    x = mg.tensor(arr)
    assert _plain(x.data) and x.dtype == mg.float64
    np.testing.assert_array_equal((x + 1).numpy(), values + 1)
    np.testing.assert_array_equal((x * x).numpy(), values * values)
    np.testing.assert_array_equal((x - x / 2).numpy(), values - values / 2)
    np.testing.assert_allclose(x.tanh().numpy(), np.tanh(values), rtol=1e-14, atol=1e-15)
    # the same arrays as the other operand of a tensor op
    y = mg.tensor(values)
    np.testing.assert_array_equal((y + arr).numpy(), values + values)
    np.testing.assert_array_equal((arr * y).numpy(), values * values)
    np.testing.assert_array_equal(mg.where(values > 0, y, arr).numpy(), values)


@pytest.mark.parametrize("layout", ["big-endian", "misaligned", "field"])
def test_unusual_layouts_in_matmul_and_its_gradient(layout):
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    a, b = _layouts(a_np)[layout], _layouts(b_np)[layout]
    w = mg.tensor(b_np, requires_grad=True)
    np.testing.assert_allclose((mg.tensor(a) @ mg.tensor(b)).numpy(), a_np @ b_np, rtol=1e-12)
    out = a @ w        # numpy operand on the left: Tensor.__rmatmul__
    np.testing.assert_allclose(out.numpy(), a_np @ b_np, rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), a_np.T @ np.ones((3, 2)), rtol=1e-12)


@pytest.mark.parametrize("layout", ["big-endian", "misaligned", "field"])
def test_every_entry_point_holds_a_native_aligned_array(layout):
    values = np.array([1.5, -2.0, 3.25])
    arr = _layouts(values)[layout]
    t = mg.zeros(3, dtype=mg.float64)
    t.data = arr
    made = {"tensor": mg.tensor(arr), "Tensor": mg.Tensor(arr), "as_tensor": mg.as_tensor(arr),
            "Parameter": nn.Parameter(arr), "tensor-f32": mg.tensor(arr, dtype=mg.float32), ".data": t}
    for name, x in made.items():
        assert _plain(x.data), name
        np.testing.assert_array_equal(x.numpy(), values.astype(x.dtype), err_msg=name)
    np.testing.assert_array_equal((made[".data"] * made["Parameter"]).numpy(), values * values)


def test_data_setter_shares_plain_arrays_and_copies_the_others():
    t = mg.zeros(3, dtype=mg.float64)
    plain = np.arange(3.0)
    t.data = plain
    assert t.data is plain
    t.data = plain.astype(">f8")
    assert t.data.dtype.isnative and t.data is not plain
    with pytest.raises(TypeError, match="int64"):
        t.data = np.arange(3)


def test_numpy_backend_applies_the_same_rule():
    script = ("import numpy as np, minigrad as mg\n"
              "assert mg.config()['backend'] == 'numpy', mg.config()\n"
              "b = np.array([1., 2., 3.], '>f8')\n"
              "x = mg.tensor(b)\n"
              "assert x.data.dtype.isnative\n"
              "assert (x + 1).tolist() == [2., 3., 4.] and (x * x).tolist() == [1., 4., 9.]\n"
              "assert (mg.ones(1, 3, dtype=mg.float64) @ b).tolist() == [6.]\n")
    env = dict(os.environ, MINIGRAD_BACKEND="numpy", PYTHONPATH=REPO)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)


# ---- read-only arrays ---------------------------------------------------------------------------------
def _read_only():
    arr = np.arange(3.0)
    arr.flags.writeable = False
    return arr


def test_tensor_copies_a_read_only_array_and_data_shares_it():
    ro = _read_only()
    t = mg.tensor(ro)
    assert t.data.flags.writeable
    t.zero_()
    assert ro.tolist() == [0.0, 1.0, 2.0]
    u = mg.zeros(3, dtype=mg.float64)
    u.data = ro
    assert u.data is ro


@pytest.mark.parametrize("write", [lambda t: t.zero_(), lambda t: t.fill_(1.0), lambda t: t.copy_(np.ones(3)),
                                   lambda t: t.uniform_(), lambda t: t.normal_(),
                                   lambda t: t.__setitem__(0, 5.0)],
                         ids=["zero_", "fill_", "copy_", "uniform_", "normal_", "setitem"])
def test_in_place_writes_refuse_a_read_only_array(write):
    ro = _read_only()
    t = mg.zeros(3, dtype=mg.float64)
    t.data = ro
    with pytest.raises(RuntimeError, match="read-only"):
        write(t)
    assert ro.tolist() == [0.0, 1.0, 2.0]
