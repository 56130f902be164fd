"""Matrix products of int64, int32 and bool tensors: torch's results, dtypes and errors."""
import numpy as np
import pytest

import minigrad as mg

torch = pytest.importorskip("torch")

# Every shape pairing minigrad's float matmul takes: vectors, matrices, batches that broadcast.
SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
          ((5, 2, 3), (3,)), ((3,), (5, 3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)),
          ((5, 1, 2, 3), (4, 3, 2)), ((0, 3), (3, 2)), ((2, 0), (0, 3))]
INT_DTYPES = [(mg.int64, torch.int64), (mg.int32, torch.int32)]


def test_the_issue_example():
    out = mg.tensor([[1, 2], [3, 4]]) @ mg.tensor([[1], [1]])
    assert out.dtype == mg.int64
    np.testing.assert_array_equal(out.data, [[3], [7]])


@pytest.mark.parametrize("dtype,tdtype", INT_DTYPES, ids=["int64", "int32"])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_integer_products_match_torch(sa, sb, dtype, tdtype):
    rng = np.random.default_rng(0)
    a, b = rng.integers(-50, 50, sa), rng.integers(-50, 50, sb)
    expected = torch.tensor(a, dtype=tdtype) @ torch.tensor(b, dtype=tdtype)
    for out in (mg.tensor(a, dtype=dtype) @ mg.tensor(b, dtype=dtype),
                mg.matmul(mg.tensor(a, dtype=dtype), mg.tensor(b, dtype=dtype)),
                mg.tensor(a, dtype=dtype).matmul(mg.tensor(b, dtype=dtype))):
        assert out.dtype == dtype and out.shape == tuple(expected.shape)
        np.testing.assert_array_equal(out.data, expected.numpy())  # integer products are exact


def test_integer_products_wrap_around_as_torch():
    a = np.array([[2**62, 3]], dtype=np.int64)
    b = np.array([[4], [5]], dtype=np.int64)
    expected = torch.from_numpy(a) @ torch.from_numpy(b)
    np.testing.assert_array_equal((mg.tensor(a) @ mg.tensor(b)).data, expected.numpy())


@pytest.mark.parametrize("sa,sb", [((2, 2), (2, 1)), ((2, 2, 2), (2, 2)), ((2,), (2, 1))])
@pytest.mark.parametrize("da,db", [("int64", "float32"), ("float32", "int64"), ("int64", "int32"),
                                   ("int32", "float64"), ("bool", "int64"), ("float64", "bool")])
def test_mixed_dtypes_raise_torchs_error(sa, sb, da, db):
    ta, tb = torch.ones(sa, dtype=getattr(torch, da)), torch.ones(sb, dtype=getattr(torch, db))
    with pytest.raises(RuntimeError) as expected:
        ta @ tb
    a, b = mg.ones(*sa, dtype=getattr(mg, da)), mg.ones(*sb, dtype=getattr(mg, db))
    for product in (lambda: a @ b, lambda: mg.matmul(a, b)):
        with pytest.raises(RuntimeError) as got:
            product()
        assert str(got.value) == str(expected.value)


def test_an_int_tensor_never_meets_a_float_one_through_promotion():
    # Elementwise ops promote int64 with float32; a product does not, even with a gradient waiting.
    w = mg.ones(2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="long int != float"):
        mg.tensor([[1, 2]]) @ w
    assert w.grad is None


@pytest.mark.parametrize("sa,sb", [((2,), (2,)), ((1, 2), (2, 1)), ((2, 2), (2,)), ((3, 2, 2), (2,)),
                                   ((2,), (2, 2)), ((3, 2, 2), (2, 2)), ((2, 2), (3, 2, 2)),
                                   ((2,), (3, 2, 2)), ((3, 2, 2), (3, 2, 2))])
def test_bool_products_are_not_implemented_as_in_torch(sa, sb):
    with pytest.raises(NotImplementedError) as expected:
        torch.ones(sa, dtype=torch.bool) @ torch.ones(sb, dtype=torch.bool)
    with pytest.raises(NotImplementedError) as got:
        mg.ones(*sa, dtype=mg.bool) @ mg.ones(*sb, dtype=mg.bool)
    assert str(got.value) == str(expected.value)


def test_integer_shape_errors_are_the_float_ones():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        mg.ones(2, 3, dtype=mg.int64) @ mg.ones(4, 5, dtype=mg.int64)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        mg.ones(2, 3, dtype=mg.int64) @ mg.tensor(1)
