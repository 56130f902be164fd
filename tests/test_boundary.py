"""One rule at the tensor boundary: what a Tensor's array may be (native byte order, aligned, float32 or
float64), dtype promotion with 0-d operands, None where a class is expected, and copying and pickling
tensors, graph nodes and models.  torch is the oracle where it accepts the input; numpy where it does not
(torch refuses big-endian arrays).
"""
import copy
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

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
    with pytest.raises(TypeError, match="int16"):
        t.data = np.arange(3, dtype=np.int16)


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


# ---- promotion: float32 with float64 ------------------------------------------------------------------
_KINDS = ["dim", "0-d", "0-d ndarray", "numpy scalar", "float", "int"]


def _operand(kind, dtype, values, lib):
    """One operand of ``kind`` in ``dtype`` holding ``values`` (its first value unless dimensioned), for
    minigrad (lib "mg") or torch.  torch refuses a numpy array in its ops (``t + ndarray`` is numpy's
    arithmetic), so its counterpart of a 0-d ndarray is the 0-d tensor made from it."""
    np_dtype = np.float32 if dtype == "f32" else np.float64
    if kind == "float":
        return float(values[0])
    if kind == "int":
        return 2
    if kind == "numpy scalar":
        return np_dtype(values[0])
    arr = np.array(values if kind == "dim" else values[0], dtype=np_dtype)
    if kind == "0-d ndarray":
        return arr if lib == "mg" else torch.as_tensor(arr)
    if lib == "mg":
        return mg.tensor(arr, requires_grad=True)
    return torch.tensor(arr, requires_grad=True)


def _pairs():
    for ka in _KINDS:
        for da in ("f32", "f64"):
            for kb in _KINDS:
                for db in ("f32", "f64"):
                    if {ka, kb} <= {"0-d ndarray", "numpy scalar", "float", "int"}:
                        continue  # no tensor: not a tensor op
                    if (ka in ("float", "int") and da == "f64") or (kb in ("float", "int") and db == "f64"):
                        continue  # Python numbers have no dtype
                    yield ka, da, kb, db


def _binary_ops():
    cond = np.array([True, False, True])
    return {
        "add": (lambda a, b: a + b, lambda a, b: a + b),
        "sub": (lambda a, b: a - b, lambda a, b: a - b),
        "mul": (lambda a, b: a * b, lambda a, b: a * b),
        "div": (lambda a, b: a / b, lambda a, b: a / b),
        "pow": (lambda a, b: a ** b, lambda a, b: a ** b),
        "where": (lambda a, b: mg.where(cond, a, b), lambda a, b: torch.where(torch.from_numpy(cond), a, b)),
    }


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "where"])
def test_promotion_table_matches_torch(op):
    """Every pair of f32/f64 x {dimensioned, 0-d tensor, 0-d ndarray, numpy scalar} and Python float/int:
    the result's dtype and values, and each tensor input's gradient (dtype and values), as torch."""
    mg_op, torch_op = _binary_ops()[op]
    values = [0.1, 0.7, 1.3]
    for ka, da, kb, db in _pairs():
        case = f"{op}: {ka} {da} with {kb} {db}"
        if op == "where" and "0-d ndarray" in (ka, kb):
            continue  # torch.where takes no ndarray, and its 0-d tensor counterpart is covered
        ma, mb = _operand(ka, da, values, "mg"), _operand(kb, db, values[::-1], "mg")
        ta, tb = _operand(ka, da, values, "torch"), _operand(kb, db, values[::-1], "torch")
        want = torch_op(ta, tb)
        got = mg_op(ma, mb)
        assert str(got.dtype) == str(want.dtype).replace("torch.", ""), case
        tol = 1e-6 if got.dtype == mg.float32 else 1e-13
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=tol, atol=tol, err_msg=case)
        want.sum().backward()
        got.sum().backward()
        # pow's backward takes log(a) in a's own dtype (torch in the result's): float32 precision then
        tol = 1e-6 if "f32" in (da, db) else tol
        for m, t in ((ma, ta), (mb, tb)):
            if isinstance(m, mg.Tensor):
                assert m.grad.dtype == m.dtype, case
                np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol, err_msg=case)


def test_comparisons_compute_in_torchs_dtype():
    values = [0.1, 0.2, 0.3]
    ops = [lambda a, b: a == b, lambda a, b: a != b, lambda a, b: a < b, lambda a, b: a <= b,
           lambda a, b: a > b, lambda a, b: a >= b]
    for ka, da, kb, db in _pairs():
        if ka != "dim" and kb != "dim" and "0-d" not in (ka, kb):
            continue
        for i, op in enumerate(ops):
            case = f"comparison {i}: {ka} {da} with {kb} {db}"
            ma, mb = _operand(ka, da, values, "mg"), _operand(kb, db, values, "mg")
            ta, tb = _operand(ka, da, values, "torch"), _operand(kb, db, values, "torch")
            if ka == "0-d ndarray":  # numpy's own comparison runs first for an ndarray on the left
                continue
            np.testing.assert_array_equal(np.asarray(op(ma, mb)), op(ta, tb).numpy(), err_msg=case)


def test_masked_fill_with_a_0d_float64_value_keeps_float32():
    x = mg.tensor([0.1, 0.2, 0.3], requires_grad=True)
    tx = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    mask = np.array([True, False, True])
    value = 0.1
    got = x.masked_fill(mask, mg.tensor(value, dtype=mg.float64))
    want = tx.masked_fill(torch.from_numpy(mask), torch.tensor(value, dtype=torch.float64))
    assert got.dtype == mg.float32 and want.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), want.detach().numpy())
    got.sum().backward()
    want.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_0d_float64_operand_of_a_graph_node_gets_its_gradient_in_float64():
    # the 0-d operand is an op's output (its gradient goes to that node), used twice
    s = mg.tensor(0.5, dtype=mg.float64, requires_grad=True)
    ts = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    x = mg.tensor([0.1, 0.2, 0.3], requires_grad=True)
    tx = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    got = (x * (s * 3)) / (s * 3)
    want = (tx * (ts * 3)) / (ts * 3)
    assert got.dtype == mg.float32
    got.sum().backward()
    want.sum().backward()
    assert s.grad.dtype == mg.float64 and x.grad.dtype == mg.float32
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


def test_addmm_still_refuses_a_0d_input_of_another_dtype():
    for c in (mg.tensor(1.0, dtype=mg.float64), np.array(1.0)):
        with pytest.raises(TypeError, match="dtype"):
            mg.addmm(c, mg.ones(2, 3), mg.ones(3, 2))
    with pytest.raises(RuntimeError):
        torch.addmm(torch.tensor(1.0, dtype=torch.float64), torch.ones(2, 3), torch.ones(3, 2))


# ---- None (and worse) where the compiled code expects a class: errors, not crashes ---------------------
_CRASH_CASES = {
    "mse_loss input": ("loss.mse_loss(None, mg.ones(2), 'mean')", "TypeError", "input"),
    "mse_loss target": ("loss.mse_loss(mg.ones(2), None, 'mean')", "TypeError", "target"),
    "mse_loss reduction": ("loss.mse_loss(mg.ones(2), mg.ones(2), None)", "TypeError", "reduction"),
    "run_backward None root": ("engine.run_backward([(None, 0)], [np.ones(1)], False)", "TypeError", "roots"),
    "run_backward bad output_nr": ("y = mg.ones(1, requires_grad=True) * 2; "
                                   "engine.run_backward([(y.grad_fn, 3)], [np.ones(1)], False)",
                                   "TypeError", "output_nr"),
    "run_backward None lists": ("engine.run_backward(None, None, False)", "TypeError", "roots"),
    "recurrent step None": ("_recurrent.step(mg.ones(2, 2), mg.ones(2, 2), None)", "TypeError",
                            "ReusedOperand"),
    "ReusedOperand never initialised": ("_recurrent.step(mg.ones(2, 2), mg.ones(2, 2), "
                                        "_recurrent.ReusedOperand.__new__(_recurrent.ReusedOperand))",
                                        "TypeError", "not initialised"),
    "record_node None": ("record_node(None, None, None)", "TypeError", "arrays"),
    # torch: AttributeError "attribute 'next_functions' of 'torch._C._FunctionBase' objects is not writable"
    "next_functions assigned": ("y = mg.ones(2, requires_grad=True) * 2; "
                                "y.grad_fn.next_functions = ((None, 0),); y.sum().backward()",
                                "AttributeError", "next_functions.*not writable"),
}


def test_none_and_bad_edges_raise_instead_of_crashing():
    # one child process runs every case: a crash (the bug) must fail this test, not end the test run
    script = ["import re, numpy as np, minigrad as mg", "from minigrad.autograd import engine",
              "from minigrad.ops import loss", "from minigrad.nn import _recurrent",
              "from minigrad.tensor import record_node",
              "cases = {}"]
    for name, (code, exc, pattern) in _CRASH_CASES.items():
        script += [f"def case():\n    {code}", f"cases[{name!r}] = (case, {exc}, {pattern!r})"]
    script += ["for name, (case, exc, pattern) in cases.items():",
               "    print(name, flush=True)",
               "    try:",
               "        case()",
               "    except exc as e:",
               "        assert re.search(pattern, str(e)), (name, e)",
               "    else:",
               "        raise AssertionError(name + ': no error')",
               "print('all raised')"]
    env = dict(os.environ, PYTHONPATH=REPO)
    run = subprocess.run([sys.executable, "-c", "\n".join(script)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.endswith("all raised\n"), (run.returncode, run.stdout[-300:],
                                                                           run.stderr[-2000:])


def test_next_functions_is_read_only_like_torchs():
    y = mg.ones(2, requires_grad=True) * 2
    t = torch.ones(2, requires_grad=True) * 2
    for node in (y.grad_fn, t.grad_fn):
        with pytest.raises(AttributeError, match="not writable"):
            node.next_functions = ()
    assert y.grad_fn.next_functions[0][0] is not None


# ---- pickle and copy ----------------------------------------------------------------------------------
def test_pickle_and_copy_of_a_non_leaf_give_a_leaf_as_torch():
    x, tx = mg.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    y, ty = (x * 2).tanh(), (tx * 2).tanh()
    for f in (lambda t: pickle.loads(pickle.dumps(t)), copy.copy):
        got, want = f(y), f(ty)
        assert (got.is_leaf, got.requires_grad, got.grad_fn) == (want.is_leaf, want.requires_grad, None)
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-6)
        got.sum().backward()  # a leaf of its own now
        assert got.grad is not None and x.grad is None


def test_deepcopy_of_a_non_leaf_raises_torchs_error():
    y, ty = mg.ones(2, requires_grad=True) * 2, torch.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError) as want:
        copy.deepcopy(ty)
    with pytest.raises(RuntimeError) as got:
        copy.deepcopy(y)
    assert str(want.value).startswith(str(got.value))


def test_pickling_a_node_is_a_type_error_as_torch():
    w = mg.ones(3, 3, requires_grad=True)
    y = (w @ mg.ones(3, 2)).tanh().sum()
    nodes = [y.grad_fn]  # sum, tanh, matmul, w's AccumulateGrad: nodes of three modules
    while nodes[-1].next_functions:
        nodes.append(nodes[-1].next_functions[0][0])
    assert [n.name() for n in nodes] == ["SumBackward", "TanhBackward", "MatmulBackward", "AccumulateGrad"]
    for node in nodes:
        for f in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match="cannot pickle '%s' object" % type(node).__name__):
                f(node)
    with pytest.raises(TypeError, match="cannot pickle 'MulBackward0' object"):
        pickle.dumps((torch.ones(1, requires_grad=True) * 2).grad_fn)


def test_pickle_and_deepcopy_keep_what_torch_keeps():
    x, tx = mg.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (tx * tx).sum().backward()
    pickled, tpickled = pickle.loads(pickle.dumps(x)), pickle.loads(pickle.dumps(tx))
    assert pickled.grad is None and tpickled.grad is None and pickled.requires_grad
    deep, tdeep = copy.deepcopy(x), copy.deepcopy(tx)
    np.testing.assert_array_equal(deep.grad.numpy(), tdeep.grad.numpy())
    assert not np.shares_memory(deep.grad.numpy(), x.grad.numpy())
    assert not np.shares_memory(deep.numpy(), x.numpy())


def test_copy_of_a_used_parameter_collects_its_own_gradient():
    p, tp = nn.Parameter(mg.ones(2)), torch.nn.Parameter(torch.ones(2))
    (p * 2).sum().backward()   # p's accumulator exists now
    (tp * 2).sum().backward()
    c, tc = copy.copy(p), copy.copy(tp)
    assert type(c) is nn.Parameter and c.grad is None and tc.grad is None
    assert np.shares_memory(c.numpy(), p.numpy())
    (c * 3).sum().backward()
    (tc * 3).sum().backward()
    np.testing.assert_array_equal(c.grad.numpy(), tc.grad.numpy())
    np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())


class _Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_a_trained_model_deepcopies_and_pickles():
    model = _Tagger()
    opt = mg.optim.Adam(model.parameters(), lr=0.01)
    x = mg.randn(5, 2, 3, generator=mg.Generator(0))
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    deep, pickled = copy.deepcopy(model), pickle.loads(pickle.dumps(model))
    for name, p in model.named_parameters():
        for other, has_grad in ((deep, True), (pickled, False)):
            q = dict(other.named_parameters())[name]
            assert type(q) is nn.Parameter and q.requires_grad and not np.shares_memory(q.numpy(), p.numpy())
            np.testing.assert_array_equal(q.numpy(), p.numpy())
            assert (q.grad is not None) == has_grad
    # each copy trains on its own: its gradients equal torch's for the same weights
    ref = torch.nn.RNN(3, 4, num_layers=2, bidirectional=True)
    head = torch.nn.Linear(8, 2)
    ref.load_state_dict({k[4:]: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()
                         if k.startswith("rnn.")})
    head.load_state_dict({k[5:]: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()
                          if k.startswith("head.")})
    head(ref(torch.from_numpy(x.numpy().copy()))[0]).sum().backward()
    pickled(x).sum().backward()
    np.testing.assert_allclose(pickled.head.weight.grad.numpy(), head.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(pickled.rnn.weight_hh_l0.grad.numpy(), ref.weight_hh_l0.grad.numpy(),
                               rtol=1e-4, atol=1e-5)


# ---- messages that name the real problem --------------------------------------------------------------
@pytest.mark.parametrize("data", [2 ** 64, -2 ** 70, [[1, 2], [3, 10 ** 25]]])
def test_an_int_outside_64_bits_is_refused_or_converted_as_torch(data):
    with pytest.raises(ValueError):
        torch.tensor(data)
    big = next(v for v in np.ravel(np.array(data, dtype=object)) if not -2 ** 63 <= v < 2 ** 64)
    with pytest.raises(ValueError, match="integer %d: it is out of the 64-bit integer range" % big):
        mg.tensor(data)
    for dtype, tdtype in ((mg.float32, torch.float32), (mg.float64, torch.float64)):
        np.testing.assert_array_equal(mg.tensor(data, dtype=dtype).numpy(),
                                      torch.tensor(data, dtype=tdtype).numpy())


def test_an_int_past_the_float_range_is_an_overflow_error_as_torch():
    with pytest.raises(OverflowError):
        torch.tensor(10 ** 400, dtype=torch.float64)
    with pytest.raises(OverflowError, match="too large for a float"):
        mg.tensor(10 ** 400, dtype=mg.float64)


def test_writing_into_an_expanded_tensor_names_the_broadcast_view():
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor refers to a"):
        torch.zeros(1, 4).expand(3, 4).copy_(torch.ones(3, 4))
    for write in (lambda t: t.copy_(mg.ones(3, 4)), lambda t: t.copy_(np.ones((3, 4))),
                  lambda t: t.fill_(1.0), lambda t: t.zero_(), lambda t: t.__setitem__(0, 1.0)):
        with pytest.raises(RuntimeError, match="broadcast view.*more than one element refers to a single "
                                               "memory location"):
            write(mg.zeros(1, 4).expand(3, 4))


def test_copy_from_a_tensor_and_data_from_a_tensor():
    # both looked up a private attribute on the source and raised AttributeError
    t, tt = mg.zeros(2, 3), torch.zeros(2, 3)
    src = np.arange(3.0, dtype=np.float32)
    t.copy_(mg.tensor(src))
    tt.copy_(torch.from_numpy(src))
    np.testing.assert_array_equal(t.numpy(), tt.numpy())
    u = mg.zeros(3)
    s = mg.tensor(src)
    u.data = s
    assert np.shares_memory(u.numpy(), s.numpy())
