"""The torch nn-level API people port (issue 17, part A), each piece against torch: activation modules,
BCE losses, nn.init, pad_sequence, Module buffers / to(dtype) / forward hooks, state-dict interop, summary."""
import math
import warnings

import numpy as np
import pytest
import torch
from nn_torch_helpers import TORCH_DTYPE, assert_close, pair, to_torch_state

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from minigrad.nn.utils.rnn import pad_sequence

DTYPES = [np.float64, np.float32]


# ---- activations ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, args", [("Tanh", ()), ("ReLU", ()), ("Sigmoid", ()), ("Softmax", (1,)),
                                        ("LogSoftmax", (1,)), ("Softmax", (-1,)), ("Identity", ()),
                                        ("Flatten", ()), ("Flatten", (0, 1))])
def test_activation_modules_match_torch(name, args, dtype):
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(ours) == repr(theirs)
    data = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(dtype) * 3
    data[0, 0, 0] = 0.0  # relu's gradient at 0 is 0
    x, tx = pair(data, requires_grad=True)
    out, tout = ours(x), theirs(tx)
    w = np.random.default_rng(1).standard_normal(tuple(tout.shape)).astype(dtype)
    (out * mg.tensor(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    assert_close(out, tout, dtype, name)
    assert_close(x.grad, tx.grad, dtype, name + " grad")


def test_activation_functions_and_reprs():
    x, tx = pair(np.linspace(-3, 3, 12).reshape(3, 4), requires_grad=True)
    for f, tf in [(F.relu, torch.nn.functional.relu), (F.tanh, torch.tanh), (F.sigmoid, torch.sigmoid),
                  (lambda t: F.softmax(t, 0), lambda t: torch.softmax(t, 0)),
                  (lambda t: F.log_softmax(t, dim=1), lambda t: torch.log_softmax(t, dim=1))]:
        assert_close(f(x), tf(tx), np.float64)
    assert repr(nn.ReLU(inplace=True)) == repr(torch.nn.ReLU(inplace=True))
    assert repr(nn.Softmax()) == repr(torch.nn.Softmax()) == "Softmax(dim=None)"
    assert nn.Identity(3, unused=True)(x) is x


def test_relu_inplace_matches_torch():
    data = np.array([-2.0, 0.0, 1.5, -0.5])
    x, tx = pair(data, requires_grad=True)
    y, ty = x * 2, tx * 2
    out, tout = nn.ReLU(inplace=True)(y), torch.nn.ReLU(inplace=True)(ty)
    assert out is y and np.array_equal(np.signbit(y.data), np.signbit(ty.detach().numpy()))  # +0.0, not -0.0
    out.sum().backward()
    tout.sum().backward()
    assert_close(x.grad, tx.grad, np.float64)


@pytest.mark.parametrize("ndim, dim", [(1, 0), (2, 1), (3, 0), (4, 1)])
def test_softmax_without_dim_uses_torchs_implicit_dim_and_warns(ndim, dim):
    x = np.random.default_rng(ndim).standard_normal((2, 3, 2, 2)[:ndim])
    for module, expected in [(nn.Softmax(), torch.softmax(torch.from_numpy(x), dim)),
                             (nn.LogSoftmax(), torch.log_softmax(torch.from_numpy(x), dim))]:
        with pytest.warns(UserWarning, match="Implicit dimension choice") as record:
            out = module(mg.tensor(x))
        assert record[0].filename == __file__  # the warning points at the caller
        assert_close(out, expected, np.float64)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        F.softmax(mg.tensor(x))


def test_flatten_errors_like_torch():
    with pytest.raises(IndexError):
        nn.Flatten()(mg.ones(3))
    with pytest.raises(IndexError):
        torch.nn.Flatten()(torch.ones(3))
    with pytest.raises(TypeError, match="minigrad Tensor"):
        nn.Flatten()(np.ones((2, 3)))


# ---- BCE losses ------------------------------------------------------------------------------------------
def _bce_data(dtype, shape=(4, 3), seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.02, 0.98, shape).astype(dtype)
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    target = rng.uniform(0, 1, shape).astype(dtype)
    target[0] = (target[0] > 0.5)  # hard and soft labels
    return probs, logits, target


def _check_against_torch(ours, theirs, inputs, dtype):
    """ours/theirs take (input, target); compare values and the gradients of input and target."""
    mg_in = [mg.tensor(a.copy(), requires_grad=True) for a in inputs]
    t_in = [torch.tensor(a.copy(), requires_grad=True) for a in inputs]
    out, tout = ours(*mg_in), theirs(*t_in)
    assert_close(out, tout, dtype, "loss")
    w = np.random.default_rng(5).standard_normal(tuple(tout.shape)).astype(out.dtype)
    (out * mg.tensor(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    for a, ta, what in zip(mg_in, t_in, ("input", "target")):
        assert a.grad.dtype == a.dtype
        assert_close(a.grad, ta.grad, dtype, what + " grad")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight_shape", [None, (3,), (4, 1), (4, 3)])
def test_bce_matches_torch(dtype, reduction, weight_shape):
    probs, _, target = _bce_data(dtype)
    weight = None if weight_shape is None else np.random.default_rng(2).uniform(0.5, 2, weight_shape)
    tw = None if weight is None else torch.from_numpy(weight.astype(dtype))
    _check_against_torch(
        lambda x, y: nn.BCELoss(weight=weight, reduction=reduction)(x, y),
        lambda x, y: torch.nn.BCELoss(weight=tw, reduction=reduction)(x, y), (probs, target), dtype)
    _check_against_torch(
        lambda x, y: F.binary_cross_entropy(x, y, weight, reduction),
        lambda x, y: torch.nn.functional.binary_cross_entropy(x, y, tw, reduction=reduction),
        (probs, target), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight_shape, pos_shape", [(None, None), ((3,), None), (None, (3,)), ((4, 1), (3,)),
                                                     ((4, 3), (4, 1))])
def test_bce_with_logits_matches_torch(dtype, reduction, weight_shape, pos_shape):
    _, logits, target = _bce_data(dtype)
    rng = np.random.default_rng(3)
    weight = None if weight_shape is None else rng.uniform(0.5, 2, weight_shape).astype(dtype)
    pos = None if pos_shape is None else rng.uniform(0.5, 3, pos_shape).astype(dtype)
    tw = None if weight is None else torch.from_numpy(weight)
    tpos = None if pos is None else torch.from_numpy(pos)
    _check_against_torch(
        lambda x, y: nn.BCEWithLogitsLoss(weight=weight, reduction=reduction, pos_weight=pos)(x, y),
        lambda x, y: torch.nn.BCEWithLogitsLoss(weight=tw, reduction=reduction, pos_weight=tpos)(x, y),
        (logits, target), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_is_stable_for_huge_logits(dtype):
    logits = np.array([1e4, -1e4, 1e4, -1e4, 50.0, -50.0, 0.0], dtype=dtype)
    target = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5], dtype=dtype)
    pos = np.full(7, 2.5, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from numpy either
        _check_against_torch(
            lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pos),
            lambda x, y: torch.nn.functional.binary_cross_entropy_with_logits(
                x, y, reduction="none", pos_weight=torch.from_numpy(pos)),
            (logits, target), dtype)
        out = F.binary_cross_entropy_with_logits(mg.tensor(logits), mg.tensor(target), reduction="none")
    assert np.isfinite(out.data).all() and out.data[0] == 1e4 and out.data[2] == 0.0
    # exp(-50) survives (log1p), as in torch: 1.9e-22, not 0
    np.testing.assert_allclose(out.data[4], math.exp(-50), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_clamps_log_at_minus_100_and_uses_torchs_gradient(dtype):
    probs = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 0.5], dtype=dtype)
    target = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.3], dtype=dtype)
    x, tx = pair(probs, requires_grad=True)
    out = F.binary_cross_entropy(x, mg.tensor(target), reduction="none")
    tout = torch.nn.functional.binary_cross_entropy(tx, torch.from_numpy(target), reduction="none")
    assert_close(out, tout, dtype)
    assert out.data[0] == 100 and out.data[1] == 100 and out.data[2] == 0
    out.sum().backward()
    tout.sum().backward()
    assert np.isfinite(x.grad.data).all()  # -1e12 at x = 0, y = 1, not nan
    assert_close(x.grad, tx.grad, dtype)
    # the target's gradient is -logit(x): infinite at 0 and 1, as in torch
    y, ty = pair(np.array([0.3, 0.6], dtype=dtype), requires_grad=True)
    F.binary_cross_entropy(mg.tensor(np.array([0.0, 1.0], dtype=dtype)), y).backward()
    torch.nn.functional.binary_cross_entropy(torch.tensor(np.array([0.0, 1.0], dtype=dtype)), ty).backward()
    np.testing.assert_array_equal(y.grad.data, ty.grad.numpy())


def test_bce_with_logits_promotes_mixed_dtypes():
    # minigrad's rule (torch here returns the target's dtype): computed in float64, each gradient in its
    # input's dtype, equal to torch's float64 result
    _, logits, target = _bce_data(np.float32)
    x = mg.tensor(logits, requires_grad=True)
    y = mg.tensor(target.astype(np.float64), requires_grad=True)
    tx = torch.tensor(logits.astype(np.float64), requires_grad=True)
    ty = torch.tensor(target.astype(np.float64), requires_grad=True)
    pos = np.random.default_rng(4).uniform(0.5, 3, 3)
    out = F.binary_cross_entropy_with_logits(x, y, pos_weight=pos)
    tout = torch.nn.functional.binary_cross_entropy_with_logits(tx, ty, pos_weight=torch.from_numpy(pos))
    assert out.dtype == np.float64
    assert_close(out, tout, np.float64)
    out.backward()
    tout.backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float64
    assert_close(x.grad, tx.grad.float(), np.float32)
    assert_close(y.grad, ty.grad, np.float64)


def test_bce_errors_match_torch():
    x = mg.tensor([0.2, 0.7, 0.5])
    with pytest.raises(ValueError, match=r"Using a target size \(\(3, 1\)\) that is different to the input "
                                         r"size \(\(3,\)\)"):
        F.binary_cross_entropy(x, np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match=r"Target size \(\(3, 1\)\) must be the same as input size"):
        F.binary_cross_entropy_with_logits(x, np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        nn.BCELoss(reduction="avg")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        nn.BCEWithLogitsLoss(reduction="avg")
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
            F.binary_cross_entropy(mg.tensor([bad]), [0.5])
    with pytest.raises(RuntimeError, match="all elements of target should be between 0 and 1"):
        F.binary_cross_entropy(mg.tensor([0.5]), [1.5])
    with pytest.raises(RuntimeError, match="Found dtype Float but expected Double"):
        F.binary_cross_entropy(mg.tensor([0.5], dtype=mg.float64), mg.tensor([0.5]))
    with pytest.raises(RuntimeError, match="weight of shape"):
        F.binary_cross_entropy(x, [0.0, 1.0, 1.0], weight=np.ones(2))
    with pytest.raises(RuntimeError, match="weight of shape"):
        F.binary_cross_entropy(x, [0.0, 1.0, 1.0], weight=np.ones((2, 3)))  # may not enlarge the loss
    with pytest.raises(RuntimeError, match="pos_weight of shape"):
        F.binary_cross_entropy_with_logits(x, [0.0, 1.0, 1.0], pos_weight=np.ones((4, 3)))
    with pytest.raises(RuntimeError, match="weight of shape"):  # a weight may not enlarge the loss
        F.binary_cross_entropy_with_logits(x, [0.0, 1.0, 1.0], np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        torch.nn.functional.binary_cross_entropy_with_logits(torch.rand(3), torch.rand(3), torch.ones(2, 3))
    for f, what in [(F.binary_cross_entropy, "binary_cross_entropy"),
                    (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits")]:
        with pytest.raises(RuntimeError, match=f"'{what}' is not differentiable with respect to argument "
                                               "'weight'"):
            f(x, [0.0, 1.0, 1.0], mg.ones(3, requires_grad=True))
        with pytest.raises(TypeError, match="minigrad Tensor"):
            f(np.array([0.5]), [0.5])
    # an empty batch's mean is nan, without a numpy warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(F.binary_cross_entropy(mg.zeros(0), np.zeros(0)).item())
        assert np.isnan(F.binary_cross_entropy_with_logits(mg.zeros(0), np.zeros(0)).item())


def test_bce_loss_weights_are_buffers_like_torch():
    w, pos = np.array([1.0, 2.0, 0.5], np.float32), np.array([3.0, 1.0, 1.0], np.float32)
    ours = nn.BCEWithLogitsLoss(weight=w, pos_weight=pos)
    theirs = torch.nn.BCEWithLogitsLoss(weight=torch.from_numpy(w), pos_weight=torch.from_numpy(pos))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "pos_weight"]
    assert list(ours.parameters()) == [] and repr(ours) == repr(theirs) == "BCEWithLogitsLoss()"
    assert list(nn.BCELoss().state_dict()) == list(torch.nn.BCELoss().state_dict()) == []
    assert list(nn.BCELoss(weight=[1, 2]).state_dict()) == ["weight"]


# ---- nn.init --------------------------------------------------------------------------------------------
def test_calculate_gain_matches_torch():
    names = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
             "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
    for name in names:
        assert nn.init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name), rel=1e-15)
    for slope in (0, 0.2, 1, 3.5):
        assert nn.init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-15)
    for bad, message in [(("gelu",), "Unsupported nonlinearity gelu"),
                         (("leaky_relu", "x"), "negative_slope x not a valid number"),
                         (("leaky_relu", True), "negative_slope True not a valid number")]:
        with pytest.raises(ValueError, match=message):
            nn.init.calculate_gain(*bad)
        with pytest.raises(ValueError, match=message):
            torch.nn.init.calculate_gain(*bad)


@pytest.mark.parametrize("shape", [(3, 5), (7, 2, 3), (4, 6, 2, 5), (1, 1)])
def test_fans_match_torch(shape):
    ours = nn.init._calculate_fan_in_and_fan_out(mg.empty(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def _check_uniform(values, bound):
    """Values fill U(-bound, bound): inside it, reaching near both ends, mean 0 and std bound/sqrt(3)."""
    n = values.size
    assert np.abs(values).max() <= bound and values.max() > 0.99 * bound and values.min() < -0.99 * bound
    assert abs(values.mean()) < 5 * bound / math.sqrt(3 * n)
    assert abs(values.std() - bound / math.sqrt(3)) < 0.02 * bound


def _check_normal(values, std):
    n = values.size
    assert abs(values.mean()) < 5 * std / math.sqrt(n)
    assert abs(values.std() - std) < 0.02 * std


@pytest.mark.parametrize("dtype", DTYPES)
def test_init_distributions_follow_torchs_formulas(dtype):
    mg.manual_seed(0)
    shape = (300, 200)  # fan_in 200, fan_out 300
    w = nn.Parameter(mg.empty(*shape, dtype=dtype))
    init = nn.init
    assert init.xavier_uniform_(w, gain=2.0) is w and w.dtype == dtype and w.requires_grad
    _check_uniform(w.data, 2.0 * math.sqrt(6 / 500))
    init.xavier_normal_(w, gain=0.5)
    _check_normal(w.data, 0.5 * math.sqrt(2 / 500))
    init.kaiming_uniform_(w)  # torch's default: leaky_relu with a = 0, fan_in
    _check_uniform(w.data, math.sqrt(2) * math.sqrt(3 / 200))
    init.kaiming_uniform_(w, a=math.sqrt(5))  # what torch's Linear uses: bound 1/sqrt(fan_in)
    _check_uniform(w.data, 1 / math.sqrt(200))
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    _check_normal(w.data, math.sqrt(2) / math.sqrt(300))
    init.kaiming_normal_(w, a=0.1, mode="FAN_IN", nonlinearity="leaky_relu")
    _check_normal(w.data, math.sqrt(2 / 1.01) / math.sqrt(200))
    init.uniform_(w, -0.3, 0.7)
    assert w.data.min() >= -0.3 and w.data.max() <= 0.7 and abs(w.data.mean() - 0.2) < 0.01
    init.normal_(w, 1.5, 0.25)
    assert abs(w.data.mean() - 1.5) < 0.005 and abs(w.data.std() - 0.25) < 0.005
    assert init.constant_(w, 0.3) is w and (w.data == dtype(0.3)).all()
    assert not init.zeros_(w).data.any() and (init.ones_(w).data == 1).all()
    assert w.grad is None and w.is_leaf


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(20, 20), (10, 30), (30, 10), (6, 3, 4)])
def test_orthogonal_init(dtype, tol, shape):
    w = mg.empty(*shape, dtype=dtype)
    assert nn.init.orthogonal_(w, gain=1.0) is w and w.dtype == dtype
    m = w.data.reshape(shape[0], -1).astype(np.float64)
    small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(small, np.eye(small.shape[0]), atol=tol)
    nn.init.orthogonal_(w, gain=2.0)
    m = w.data.reshape(shape[0], -1).astype(np.float64)
    small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(small, 4 * np.eye(small.shape[0]), atol=4 * tol)


def test_init_generator_and_errors_like_torch():
    a, b = mg.empty(4, 5), mg.empty(4, 5)
    for fn in (nn.init.xavier_uniform_, nn.init.xavier_normal_, nn.init.kaiming_uniform_,
               nn.init.kaiming_normal_, nn.init.orthogonal_, nn.init.uniform_, nn.init.normal_):
        fn(a, generator=mg.Generator(7))
        fn(b, generator=mg.Generator(7))
        np.testing.assert_array_equal(a.data, b.data)
    for fn in (nn.init.xavier_uniform_, nn.init.xavier_normal_, nn.init.kaiming_uniform_,
               nn.init.kaiming_normal_):
        with pytest.raises(ValueError, match="Fan in and fan out can not be computed for tensor with fewer "
                                             "than 2 dimensions"):
            fn(mg.empty(3))
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions are supported"):
        nn.init.orthogonal_(mg.empty(3))
    with pytest.raises(ValueError, match=r"Mode fan_avg not supported, please use one of \['fan_in', "
                                         r"'fan_out'\]"):
        nn.init.kaiming_uniform_(mg.empty(3, 4), mode="fan_avg")
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        assert nn.init.kaiming_uniform_(mg.empty(0, 3)).shape == (0, 3)
    with pytest.raises(TypeError, match="minigrad Tensor"):
        nn.init.zeros_(np.ones(3))


# ---- pad_sequence -------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("trailing", [(), (3,)])
def test_pad_sequence_matches_torch(batch_first, padding_side, trailing):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, *trailing)) for n in (2, 5, 1, 5)]
    seqs = [mg.tensor(a, requires_grad=True) for a in arrays]
    tseqs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = pad_sequence(seqs, batch_first=batch_first, padding_value=-2.5, padding_side=padding_side)
    tout = torch.nn.utils.rnn.pad_sequence(tseqs, batch_first=batch_first, padding_value=-2.5,
                                           padding_side=padding_side)
    assert_close(out, tout, np.float64)
    w = rng.standard_normal(tuple(tout.shape))
    (out * mg.tensor(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    for s, t in zip(seqs, tseqs):
        assert_close(s.grad, t.grad, np.float64)


def test_pad_sequence_feeds_rnn_lengths_and_errors():
    seqs = [mg.ones(n, 2) for n in (3, 1, 2)]
    padded = nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    out, _ = nn.RNN(2, 4, batch_first=True)(padded, lengths=[3, 1, 2])
    assert out.shape == (3, 3, 4) and not out.data[1, 1:].any()
    assert pad_sequence(mg.ones(2, 3)).shape == (3, 2)  # a tensor is the sequence of its rows, as torch
    with pytest.raises(RuntimeError, match="received an empty list of sequences"):
        pad_sequence([])
    with pytest.raises(RuntimeError, match="Expected padding_side to be one of left or right, but got middle"):
        pad_sequence(seqs, padding_side="middle")
    with pytest.raises(RuntimeError, match="trailing dimensions"):
        pad_sequence([mg.ones(2, 3), mg.ones(3, 4)])
    with pytest.raises(TypeError, match="minigrad Tensor"):
        pad_sequence([np.ones((2, 3))])


# ---- buffers, to(dtype), hooks -----------------------------------------------------------------------
class Norm(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(mg.ones(n))
        self.register_buffer("running_mean", mg.zeros(n))
        self.register_buffer("scratch", mg.zeros(n), persistent=False)
        self.inner = nn.Linear(n, n)
        self.inner.register_buffer("count", mg.ones(1))


class TorchNorm(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("scratch", torch.zeros(n), persistent=False)
        self.inner = torch.nn.Linear(n, n)
        self.inner.register_buffer("count", torch.ones(1))


def test_buffers_match_torch():
    ours, theirs = Norm(3), TorchNorm(3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert len(list(ours.buffers())) == 3 and len(list(ours.buffers(recurse=False))) == 2
    assert ours.running_mean.shape == (3,) and not ours.running_mean.requires_grad
    ours.running_mean = mg.full((3,), 2.0)  # reassigning keeps it a buffer
    assert "running_mean" in ours.state_dict() and ours.state_dict()["running_mean"].data[0] == 2.0
    # buffers load from torch and back
    with torch.no_grad():
        theirs.running_mean.fill_(5.0)
        theirs.inner.count.fill_(7.0)
    ours.load_state_dict(theirs.state_dict())
    assert ours.running_mean.data.tolist() == [5.0] * 3 and ours.inner.count.data.tolist() == [7.0]
    theirs2 = TorchNorm(3)
    theirs2.load_state_dict(to_torch_state(ours))
    assert theirs2.inner.count.item() == 7.0
    sd = ours.state_dict()
    del sd["inner.count"]
    sd["bogus"] = np.zeros(1)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "bogus"\. \s*Missing key\(s\) '
                                           r'in state_dict: "inner\.count"'):
        ours.load_state_dict(sd)
    result = ours.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["inner.count"] and result.unexpected_keys == ["bogus"]
    del ours.scratch, theirs.scratch
    assert "scratch" not in dict(ours.named_buffers())
    # a Parameter assigned to a buffer's name replaces it; reassigning a parameter keeps its place
    for lib, m in ((nn, ours), (torch.nn, theirs)):
        m.running_mean = lib.Parameter(m.running_mean.detach())
        m.weight = lib.Parameter(m.weight.detach())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()] == ["inner.count"]


def test_register_buffer_errors_like_torch():
    m = nn.Linear(2, 2)
    for args, exc, message in [(("a.b", mg.ones(1)), KeyError, 'contain "."'),
                               (("", mg.ones(1)), KeyError, 'empty string ""'),
                               (("weight", mg.ones(1)), KeyError, "attribute 'weight' already exists"),
                               (("x", 3), TypeError, "cannot assign 'int' object to buffer 'x'"),
                               ((3, mg.ones(1)), TypeError, "buffer name should be a string. Got int")]:
        with pytest.raises(exc, match=message):
            m.register_buffer(*args)
        with pytest.raises(exc, match=message.replace("minigrad", "torch")):
            torch.nn.Linear(2, 2).register_buffer(*[torch.ones(1) if isinstance(a, mg.Tensor) else a
                                                    for a in args])
    m.register_buffer("b", mg.ones(1))
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'b'"):
        m.b = 5
    m.b = None
    assert "b" not in m.state_dict()


@pytest.mark.parametrize("method", ["to", "double"])
def test_module_to_double_keeps_parameters_and_optimizer_like_torch(method):
    mg.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    theirs.load_state_dict(to_torch_state(ours))
    ours.register_buffer("stat", mg.ones(2))
    params, tparams = list(ours.parameters()), list(theirs.parameters())
    opt, topt = mg.optim.Adam(params, lr=0.1), torch.optim.Adam(tparams, lr=0.1)
    x = np.random.default_rng(0).standard_normal((5, 3))
    ours(mg.tensor(x.astype(np.float32))).sum().backward()  # a float32 gradient, converted too
    result = ours.to(mg.float64) if method == "to" else ours.double()
    assert result is ours
    theirs.double()
    assert all(p is q for p, q in zip(params, ours.parameters()))  # the same Parameter objects, as torch
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert ours.stat.dtype == np.float64
    opt.zero_grad()
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        ours(mg.tensor(x)).sum().backward()
        theirs(torch.from_numpy(x)).sum().backward()
        opt.step()
        topt.step()
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        assert_close(p, tp, np.float64)
    ours.float()
    assert all(p.dtype == np.float32 for p in params) and ours.stat.dtype == np.float32
    ours.to(mg.zeros(1, dtype=mg.float64))
    assert params[0].dtype == np.float64


def test_module_to_errors_like_torch():
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex dtypes"):
        nn.Linear(2, 2).to(np.int64)
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex dtypes"):
        torch.nn.Linear(2, 2).to(torch.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(2, 2).to(np.float16)
    with pytest.raises(TypeError, match="expects a dtype"):
        nn.Linear(2, 2).to(object())


def test_rnn_runs_in_float64_after_double():
    mg.manual_seed(1)
    rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True).double()
    trnn = torch.nn.RNN(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    trnn.load_state_dict(to_torch_state(rnn))
    x, tx = pair(np.random.default_rng(0).standard_normal((5, 2, 3)))
    (out, h), (tout, th) = rnn(x), trnn(tx)
    assert_close(out, tout, np.float64)
    assert_close(h, th, np.float64)


def test_forward_hooks_like_torch():
    calls = []
    lin = nn.Linear(2, 3)
    x = mg.ones(4, 2)

    def record(tag):
        return lambda module, args, output: calls.append((tag, module, args, output.shape))

    h1 = lin.register_forward_hook(record("a"))
    lin.register_forward_hook(record("first"), prepend=True)
    out = lin(x)
    assert [c[0] for c in calls] == ["first", "a"]
    assert calls[1][1] is lin and calls[1][2][0] is x and calls[1][3] == out.shape
    h1.remove()
    h1.remove()  # removing twice is harmless, as in torch
    calls.clear()
    lin(x)
    assert [c[0] for c in calls] == ["first"]
    with lin.register_forward_hook(lambda m, args, output: output * 0):  # a returned value replaces it
        assert not lin(x).data.any()
    assert lin(x).data.any()
    seen = {}
    lin.register_forward_hook(lambda m, args, kwargs, output: seen.update(kwargs), with_kwargs=True)
    seq = nn.Sequential(lin)
    seq(x)
    assert seen == {}
    rnn = nn.RNN(2, 3)
    rnn.register_forward_hook(lambda m, args, kwargs, output: seen.update(kwargs), with_kwargs=True)
    rnn(mg.ones(2, 1, 2), lengths=[2])
    assert seen == {"lengths": [2]}
    with pytest.raises(TypeError, match="callable"):
        lin.register_forward_hook(3)
    # the same semantics in torch: a hook's return value replaces the output
    tl = torch.nn.Linear(2, 3)
    tl.register_forward_hook(lambda m, args, output: output * 0)
    assert not tl(torch.ones(4, 2)).any()


# ---- state-dict interop ---------------------------------------------------------------------------------
MODELS = [
    (lambda lib, **kw: lib.Linear(5, 3, **kw), lambda: np.random.default_rng(0).standard_normal((4, 5))),
    (lambda lib, **kw: lib.RNN(3, 4, num_layers=2, bidirectional=True, **kw),
     lambda: np.random.default_rng(0).standard_normal((6, 2, 3))),
    (lambda lib, **kw: lib.Embedding(7, 3, **kw), lambda: np.array([[0, 6, 2], [1, 1, 5]])),
]


@pytest.mark.parametrize("make, data", MODELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_interop_both_ways(make, data, dtype):
    mg.manual_seed(3)
    ours, theirs = make(nn, dtype=dtype), make(torch.nn, dtype=TORCH_DTYPE[dtype])
    x = data()
    x = x.astype(dtype) if x.dtype.kind == "f" else x

    def outputs():
        o = ours(mg.tensor(x) if x.dtype.kind == "f" else x)
        t = theirs(torch.from_numpy(x))
        return (o, t) if not isinstance(o, tuple) else (o[0], t[0])

    # minigrad -> torch: the README's one-liner
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    assert_close(*outputs(), dtype)
    # torch -> minigrad: its state dict, or its parameters (which require grad), load as they are
    fresh = make(torch.nn, dtype=TORCH_DTYPE[dtype])
    ours.load_state_dict(fresh.state_dict())
    theirs = fresh
    assert_close(*outputs(), dtype)
    ours.load_state_dict(dict(fresh.named_parameters()))
    assert_close(*outputs(), dtype)


# ---- summary ------------------------------------------------------------------------------------------
def test_summary_of_the_keras_simple_rnn_example(capsys):
    rnn = nn.RNN(64, 32, batch_first=True)
    s = nn.summary(rnn, (1, 16, 64))
    assert capsys.readouterr().out.strip() == s.strip()
    hand = 64 * 32 + 32 * 32 + 32 + 32  # W_ih, W_hh, b_ih, b_hh; Keras's SimpleRNN has one bias: 3104
    assert s.total_params == hand == 3136 == sum(p.numel() for p in torch.nn.RNN(64, 32).parameters())
    assert s.trainable_params == 3136 and s.non_trainable_params == 0
    assert isinstance(s, str) and "Total params: 3,136" in s and "Non-trainable params: 0" in s
    assert s.layers == [("", "RNN", [(None, 16, 32), (1, None, 32)], 3136)]
    assert "[(None, 16, 32), (1, None, 32)]" in s


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.rnn = nn.RNN(8, 16, num_layers=2, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(32, 5), nn.LogSoftmax(dim=-1))
        self.unused = nn.Linear(1, 1)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.head(out)


class TorchTagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 8)
        self.rnn = torch.nn.RNN(8, 16, num_layers=2, bidirectional=True)
        self.head = torch.nn.Sequential(torch.nn.Linear(32, 5), torch.nn.LogSoftmax(dim=-1))
        self.unused = torch.nn.Linear(1, 1)


def test_summary_of_a_nested_model():
    model = Tagger()
    model.emb.weight.requires_grad_(False)
    s = nn.summary(model, (7, 3), dtype=np.int64, batch_dim=1, verbose=False)
    rnn = 2 * (8 * 16 + 16 * 16 + 32) + 2 * (32 * 16 + 16 * 16 + 32)
    expected = [("", "Tagger", (7, None, 5), 80 + rnn + 165 + 2),
                ("emb", "Embedding", (7, None, 8), 80),
                ("rnn", "RNN", [(7, None, 32), (4, None, 16)], rnn),
                ("head", "Sequential", (7, None, 5), 165),
                ("head.0", "Linear", (7, None, 5), 165),
                ("head.1", "LogSoftmax", (7, None, 5), 0),
                ("unused", "Linear", None, 2)]
    assert s.layers == expected
    assert s.total_params == sum(p.numel() for p in TorchTagger().parameters()) == 80 + rnn + 167
    assert s.non_trainable_params == 80 and s.trainable_params == rnn + 167
    assert "unused (Linear)" in s and "--" in s and "emb (Embedding)" in s
    assert model.emb.weight.grad is None and not model._forward_hooks and not model.rnn._forward_hooks


def test_summary_leaves_the_random_stream_alone():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    mg.manual_seed(11)
    expected = mg.rand(5).data
    mg.manual_seed(11)
    nn.summary(model, (3, 4), verbose=False)
    np.testing.assert_array_equal(mg.rand(5).data, expected)


def test_summary_errors():
    with pytest.raises(TypeError, match="Module"):
        nn.summary(torch.nn.Linear(2, 2), (1, 2))
    with pytest.raises(TypeError, match="input_size"):
        nn.summary(nn.Linear(2, 2), 2)
    with pytest.raises(TypeError, match="positive ints"):
        nn.summary(nn.Linear(2, 2), (0, 2))
    with pytest.raises(ValueError, match="batch_dim"):
        nn.summary(nn.Linear(2, 2), (1, 2), batch_dim=2)
