"""Adversarial numerics of losses, layers, optimisers and ops, each pinned against PyTorch (issue 18, part B):
ignored targets with -inf/nan logits, all-padding batches, gradients at nan and -0.0, zero-size layers, no
numpy warnings where torch is silent, reductions over ``dim=()``, and torch's errors for bad arguments."""
import contextlib
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from nn_torch_helpers import assert_close, pair, torch_twin

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn import functional as F

NAN, INF = float("nan"), float("inf")
TORCH = {np.float32: torch.float32, np.float64: torch.float64}


def _exact(actual, expected, what=""):
    """Same values, with nan, inf and the sign of infinity all matching (a last-bit tolerance for finite
    values: the two libraries may round a square root's reciprocal differently)."""
    e = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    a = np.asarray(actual.data if isinstance(actual, mg.Tensor) else actual)
    assert a.shape == e.shape and a.dtype == e.dtype, what
    np.testing.assert_allclose(a, e, rtol=4 * np.finfo(a.dtype).eps, atol=0, err_msg=what)


@contextlib.contextmanager
def _no_warnings():
    """Any warning inside is an error (numpy's RuntimeWarnings included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _targets(t):
    return torch.from_numpy(np.asarray(t, dtype=np.int64))


# ---- cross_entropy / nll_loss: ignored targets and all-padding batches -----------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("bad", [-INF, NAN], ids=["-inf", "nan"])
def test_cross_entropy_ignores_rows_with_nonfinite_logits_like_torch(dtype, reduction, bad):
    """An ignored row (target == ignore_index) with -inf or nan logits: torch's loss is the other rows' finite
    loss; minigrad multiplied the ignored row's -inf log-probability by a zero weight and got nan."""
    logits = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    logits[1, :2] = bad  # a padding row, e.g. masked-out scores
    logits[3, 0] = -INF  # a counted row whose target is elsewhere: finite loss
    target = np.array([2, -100, 4, 1])
    x, tx = pair(logits, requires_grad=True)
    out = F.cross_entropy(x, target, reduction=reduction)
    t_out = TF.cross_entropy(tx, _targets(target), reduction=reduction)
    w = np.arange(1, 5, dtype=dtype) if reduction == "none" else np.array(1, dtype=dtype)
    (out * mg.tensor(w)).sum().backward()
    (t_out * torch.from_numpy(w)).sum().backward()
    assert np.isfinite(out.numpy()).all()
    assert_close(out, t_out, dtype, "loss")
    assert_close(x.grad, tx.grad, dtype, "grad")  # zero on the -inf row; nan on the nan row, as in torch


def test_cross_entropy_ignored_positions_of_a_sequence_like_torch():
    """(N, C, L) scores with padded time steps where all classes but one score -inf."""
    logits = np.random.default_rng(1).standard_normal((2, 3, 4))
    logits[1, :2, 2:] = -INF
    target = np.array([[0, 1, 2, 1], [2, 0, -100, -100]])
    x, tx = pair(logits, requires_grad=True)
    out = F.cross_entropy(x, target)
    t_out = TF.cross_entropy(tx, _targets(target))
    out.backward()
    t_out.backward()
    assert_close(out, t_out, np.float64, "loss")
    assert_close(x.grad, tx.grad, np.float64, "grad")
    assert not x.grad.numpy()[1, :, 2:].any()


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_ignored_mean_loss_has_zero_gradients_like_torch(loss, dtype):
    """An all-padding batch with reduction 'mean': the loss is nan (0 / 0) but the gradient is zero, as in
    torch; minigrad's gradient was nan everywhere, so one optimiser step made every weight nan."""
    data = np.random.default_rng(2).standard_normal((3, 4)).astype(dtype)
    target = np.full(3, -100)
    x, tx = pair(data, requires_grad=True)
    with _no_warnings():
        out = getattr(F, loss)(x, target)
        out.backward()
    t_out = getattr(TF, loss)(tx, _targets(target))
    t_out.backward()
    assert math.isnan(out.item()) and math.isnan(t_out.item())
    _exact(x.grad, tx.grad, "grad")
    assert not x.grad.numpy().any()


def test_all_padding_batch_leaves_the_weights_finite_after_a_step():
    model = nn.Linear(4, 3)
    t_model = torch_twin(model, torch.nn.Linear(4, 3))
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    target = np.full(5, 7)
    opt, t_opt = optim.Adam(model.parameters(), lr=0.1), torch.optim.Adam(t_model.parameters(), lr=0.1)
    F.cross_entropy(model(mg.tensor(x)), target, ignore_index=7).backward()
    TF.cross_entropy(t_model(torch.from_numpy(x)), _targets(target), ignore_index=7).backward()
    opt.step()
    t_opt.step()
    for name, p in model.named_parameters():
        assert np.isfinite(p.numpy()).all(), name
        assert_close(p, dict(t_model.named_parameters())[name], np.float32, name)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weighted_nll_loss_with_zero_total_weight_like_torch(reduction):
    """Counted targets whose class weights are all 0: torch's 'mean' is 0 / 0 with nan gradients on the
    counted rows (only), zero on the ignored one."""
    logp = np.log(np.full((3, 4), 0.25))
    target = np.array([0, -100, 1])
    weight = np.array([0.0, 0.0, 1.0, 1.0])
    x, tx = pair(logp, requires_grad=True)
    out = F.nll_loss(x, target, weight=weight, reduction=reduction)
    t_out = TF.nll_loss(tx, _targets(target), weight=torch.from_numpy(weight), reduction=reduction)
    out.sum().backward()
    t_out.sum().backward()
    _exact(out, t_out, "loss")
    _exact(x.grad, tx.grad, "grad")


# ---- gradients at nan, inf and -0.0 ------------------------------------------------------------------------
NAN_GRAD_CASES = {
    "max-one-nan": (lambda t: t.max(), [1.0, NAN, 3.0]),
    "max-two-nans": (lambda t: t.max(), [NAN, 1.0, NAN]),
    "min-one-nan": (lambda t: t.min(), [1.0, NAN, -3.0]),
    "max-dim": (lambda t: t.max(dim=1)[0], [[1.0, NAN, 2.0], [3.0, 2.0, NAN]]),
    "min-dim": (lambda t: t.min(dim=0)[0], [[1.0, NAN, 2.0], [3.0, 2.0, NAN]]),
    "relu": (lambda t: t.relu(), [NAN, 1.0, -1.0, 0.0, -0.0]),
    "abs": (lambda t: t.abs(), [NAN, 1.0, -1.0, 0.0, -0.0, INF, -INF]),
    "clamp": (lambda t: t.clamp(0.0, 1.0), [NAN, -1.0, 0.0, 0.5, 1.0, 2.0]),
    "clamp-min": (lambda t: t.clamp(min=0.0), [NAN, -1.0, 0.0, 2.0]),
    "clamp-max": (lambda t: t.clamp(max=0.0), [NAN, -1.0, 0.0, 2.0]),
}
SPECIAL = [-0.0, 0.0, -INF, INF, -1.0, NAN, 2.5]
NAN_GRAD_CASES.update({f"pow-{p}": ((lambda t, p=p: t ** p), SPECIAL)
                       for p in (0.5, -0.5, 1.5, -1.5, 2, 3, -1, -2, 0)})
NAN_GRAD_CASES["sqrt"] = (lambda t: t.sqrt(), SPECIAL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(NAN_GRAD_CASES))
def test_values_and_gradients_at_nan_inf_and_negative_zero_like_torch(case, dtype):
    """torch's gradients: 1 at a nan maximum (shared among tied nans), 1 for relu at nan, 0 for abs at nan;
    ``x ** 0.5`` at -0.0 is -inf like sqrt's, and ``x ** -0.5`` is 1 / sqrt(x) (-inf at -0.0)."""
    fn, values = NAN_GRAD_CASES[case]
    x, tx = pair(np.array(values, dtype=dtype), requires_grad=True)
    with _no_warnings():
        out = fn(x)
        out.sum().backward()
    t_out = fn(tx)
    t_out.sum().backward()
    _exact(out, t_out, "value")
    _exact(x.grad, tx.grad, "grad")


def test_pow_gradient_for_a_float64_exponent_of_a_float32_base_is_float64_exact():
    """The exponent's gradient y * log(a) was computed with a float32 log (relative error ~3e-7)."""
    rng = np.random.default_rng(4)
    base = rng.uniform(0.1, 10.0, 50).astype(np.float32)
    exponent = rng.uniform(-3.0, 3.0, 50)
    a, ta = pair(base)
    b, tb = pair(exponent, requires_grad=True)
    (a ** b).sum().backward()
    (ta ** tb).sum().backward()
    assert b.grad.dtype == mg.float64
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-13)


def test_pow_with_a_modulus_is_a_type_error_like_torch():
    x = mg.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="unsupported operand"):
        mg.pow(x, 2, 3)
    with pytest.raises(TypeError, match="unsupported operand"):
        pow(x, 2, 3)  # the built-in, through Tensor.__pow__
    with pytest.raises(TypeError):
        torch.pow(torch.tensor([1.0, 2.0]), 2, 3)
    with pytest.raises(TypeError):
        pow(torch.tensor([1.0, 2.0]), 2, 3)


# ---- zero-size layers --------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op:UserWarning")
@pytest.mark.parametrize("sizes", [(0, 3), (3, 0), (0, 0)])
def test_zero_size_linear_like_torch(sizes):
    with _no_warnings():
        layer = nn.Linear(*sizes)
    t_layer = torch.nn.Linear(*sizes)
    # torch's bias bound is 1/sqrt(in_features), 0 when in_features is 0: a zero bias
    if sizes[0] == 0:
        assert not layer.bias.numpy().any() and not t_layer.bias.detach().numpy().any()
    torch_twin(layer, t_layer)
    x, tx = pair(np.random.default_rng(5).standard_normal((2, sizes[0])).astype(np.float32), True)
    with _no_warnings():
        out = layer(x)
        out.sum().backward()
    t_out = t_layer(tx)
    t_out.sum().backward()
    assert_close(out, t_out, np.float32, "out")
    assert_close(x.grad, tx.grad, np.float32, "input grad")
    assert_close(layer.weight.grad, t_layer.weight.grad, np.float32, "weight grad")
    assert_close(layer.bias.grad, t_layer.bias.grad, np.float32, "bias grad")


@pytest.mark.parametrize("sizes", [(0, 3), (3, 0)])
def test_zero_size_rnn_cell_like_torch(sizes):
    with _no_warnings():
        cell = nn.RNNCell(*sizes)
    t_cell = torch_twin(cell, torch.nn.RNNCell(*sizes))
    x, tx = pair(np.random.default_rng(6).standard_normal((2, sizes[0])).astype(np.float32), True)
    h, th = pair(np.random.default_rng(7).standard_normal((2, sizes[1])).astype(np.float32), True)
    with _no_warnings():
        out = cell(x, h)
        out.sum().backward()
    t_out = t_cell(tx, th)
    t_out.sum().backward()
    assert_close(out, t_out, np.float32, "out")
    assert_close(x.grad, tx.grad, np.float32, "input grad")
    assert_close(h.grad, th.grad, np.float32, "hidden grad")
    for name, tp in t_cell.named_parameters():
        assert_close(dict(cell.named_parameters())[name].grad, tp.grad, np.float32, name)


@pytest.mark.parametrize("sizes", [(4, 0), (0, 3)])
def test_zero_size_embedding_like_torch(sizes):
    with _no_warnings():
        emb = nn.Embedding(*sizes)
    t_emb = torch_twin(emb, torch.nn.Embedding(*sizes))
    ids = np.array([[1, 3], [0, 2]]) if sizes[0] else np.zeros((2, 0), np.int64)
    out = emb(ids)
    t_out = t_emb(torch.from_numpy(ids))
    assert out.shape == tuple(t_out.shape)
    out.sum().backward()
    t_out.sum().backward()
    assert_close(emb.weight.grad, t_emb.weight.grad, np.float32, "weight grad")


def test_rnn_still_refuses_zero_sizes_like_torch():
    for sizes in [(0, 3), (3, 0)]:
        with pytest.raises(ValueError, match="greater than zero"):
            torch.nn.RNN(*sizes)
        with pytest.raises(ValueError, match="greater than zero"):
            nn.RNN(*sizes)


# ---- no numpy warnings where torch is silent ---------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, INF, -INF, 0.5])
@pytest.mark.parametrize("value", [1e19, 1e20, 3e38])
def test_clip_grad_norm_of_huge_float32_gradients_is_silent_and_like_torch(value, norm_type):
    grads = [np.full(3, value, np.float32), np.ones(2, np.float32)]
    params = [nn.Parameter(mg.zeros(g.shape[0])) for g in grads]
    t_params = [torch.zeros(g.shape[0], requires_grad=True) for g in grads]
    for p, tp, g in zip(params, t_params, grads):
        p.grad = mg.tensor(g.copy())
        tp.grad = torch.from_numpy(g.copy())
    with _no_warnings():
        total = nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, 1.0, norm_type=norm_type)
    assert_close(total, t_total, np.float32, "total norm")
    for p, tp in zip(params, t_params):
        assert_close(p.grad, tp.grad, np.float32, "clipped grad")


@pytest.mark.parametrize("opt_name, kwargs", [
    ("Adam", {}), ("Adam", {"amsgrad": True, "weight_decay": 0.1}), ("AdamW", {}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
])
def test_optimiser_steps_with_inf_gradients_are_silent_and_like_torch(opt_name, kwargs):
    """inf gradients make inf or nan parameters in torch, without a word; minigrad printed numpy's
    RuntimeWarnings (``inf / inf`` in Adam's update, ``inf - inf`` in SGD's weight decay)."""
    start = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    grads = [np.array([INF, 1.0, -INF, NAN], np.float32), np.array([INF, -INF, 1.0, 2.0], np.float32)]
    p, tp = nn.Parameter(mg.tensor(start)), torch.tensor(start, requires_grad=True)
    opt, t_opt = getattr(optim, opt_name)([p], **kwargs), getattr(torch.optim, opt_name)([tp], **kwargs)
    for g in grads:
        p.grad, tp.grad = mg.tensor(g), torch.from_numpy(g.copy())
        with _no_warnings():
            opt.step()
        t_opt.step()
        assert_close(p, tp, np.float32, f"{opt_name} parameters")


# ---- embedding padding_idx ---------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [-1, -4, 2])
def test_functional_embedding_negative_padding_idx_gets_no_gradient_like_torch(padding_idx):
    w, tw = pair(np.random.default_rng(8).standard_normal((4, 3)), requires_grad=True)
    ids = np.array([[3, 1, 0], [2, 3, 3]])
    out = F.embedding(ids, w, padding_idx=padding_idx)
    t_out = TF.embedding(torch.from_numpy(ids), tw, padding_idx=padding_idx)
    out.sum().backward()
    t_out.sum().backward()
    assert_close(out, t_out, np.float64, "rows")
    assert_close(w.grad, tw.grad, np.float64, "grad")
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        F.embedding(ids, w, padding_idx=-5)


# ---- reductions over dim=() and tuples ---------------------------------------------------------------------
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [(), []], ids=["tuple", "list"])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_empty_dim_reduces_every_dimension_like_torch(op, dim, keepdim):
    x, tx = pair(np.random.default_rng(9).standard_normal((2, 3, 4)), requires_grad=True)
    out = getattr(x, op)(dim=dim, keepdim=keepdim)
    t_out = getattr(tx, op)(dim=dim, keepdim=keepdim)
    out.backward(np.ones(out.shape))
    t_out.backward(torch.ones(t_out.shape, dtype=torch.float64))
    assert_close(out, t_out, np.float64, "value")
    assert_close(x.grad, tx.grad, np.float64, "grad")


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [(0, 2), [2, 0], (1,), (-1, 0, 1), ()])
def test_logsumexp_over_a_tuple_of_dims_like_torch(dim, keepdim):
    data = np.random.default_rng(10).standard_normal((2, 3, 4))
    data[0, 1, 2] = 800.0  # exp overflows without the max shift
    x, tx = pair(data, requires_grad=True)
    out = x.logsumexp(dim, keepdim=keepdim)
    # torch 2.13 fails internally on dim=() without keepdim; dim=() means every dimension there too
    t_dim = (0, 1, 2) if dim == () and not keepdim else dim
    t_out = tx.logsumexp(t_dim, keepdim=keepdim)
    w = np.random.default_rng(11).standard_normal(t_out.shape)
    (out * mg.tensor(w)).sum().backward()
    (t_out * torch.from_numpy(w)).sum().backward()
    assert_close(out, t_out, np.float64, "value")
    assert_close(x.grad, tx.grad, np.float64, "grad")


def test_sum_of_opposite_infinities_is_a_silent_nan_like_torch():
    with _no_warnings():
        out = mg.tensor([INF, -INF, 1.0]).sum()
    assert math.isnan(out.item()) and math.isnan(torch.tensor([INF, -INF, 1.0]).sum().item())


# ---- torch's errors for bad arguments ---------------------------------------------------------------------
@pytest.mark.parametrize("index", [[[-1], [0]], [[0], [3]], [[0, -3], [1, 2]]])
def test_gather_refuses_out_of_range_and_negative_indices_like_torch(index):
    data = np.arange(6.0).reshape(2, 3)
    idx = np.array(index)
    with pytest.raises(RuntimeError) as t_err:
        torch.from_numpy(data).gather(1, torch.from_numpy(idx))
    with pytest.raises(RuntimeError) as err:
        mg.tensor(data).gather(1, idx)
    assert str(err.value) == str(t_err.value)


@pytest.mark.parametrize("args", [(0, 1, -1), (1, 0, 1), (2.5, -1.0, 0.5)])
def test_arange_refuses_a_step_of_the_wrong_sign_like_torch(args):
    with pytest.raises(RuntimeError) as t_err:
        torch.arange(*args)
    with pytest.raises(RuntimeError) as err:
        mg.arange(*args)
    assert str(err.value) == str(t_err.value)


def test_arange_of_an_empty_range_with_a_negative_step_is_empty_like_torch():
    assert mg.arange(0, 0, -1).shape == tuple(torch.arange(0, 0, -1).shape) == (0,)
    np.testing.assert_array_equal(mg.arange(3, 0, -1).numpy(), torch.arange(3.0, 0, -1).numpy())


@pytest.mark.parametrize("opt_name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwarg, message", [
    ({"lr": NAN}, "Invalid learning rate: nan"), ({"eps": NAN}, "Invalid epsilon value: nan"),
    ({"weight_decay": NAN}, "Invalid weight_decay value: nan"),
    ({"betas": (NAN, 0.999)}, "Invalid beta parameter at index 0: nan"),
])
def test_adam_refuses_nan_hyper_parameters_like_torch(opt_name, kwarg, message):
    with pytest.raises(ValueError, match=message):
        getattr(torch.optim, opt_name)([torch.zeros(2, requires_grad=True)], **kwarg)
    with pytest.raises(ValueError, match=message):
        getattr(optim, opt_name)([nn.Parameter(mg.zeros(2))], **kwarg)


def test_sgd_takes_a_nan_learning_rate_like_torch():
    """torch's SGD checks ``lr < 0``, which nan passes; minigrad matches it rather than Adam's check."""
    torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=NAN)
    assert math.isnan(optim.SGD([nn.Parameter(mg.zeros(2))], lr=NAN).param_groups[0]["lr"])


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "AdamW"])
def test_optimisers_refuse_parameters_in_a_set(opt_name):
    """A set's order changes between runs and a state dict names parameters by position.  torch refuses a
    set inside a parameter group; minigrad also refuses one given directly (torch 2.13 lists it)."""
    a, b = nn.Parameter(mg.zeros(2)), nn.Parameter(mg.zeros(3))
    ta, tb = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError) as t_err:
        getattr(torch.optim, opt_name)([{"params": {ta, tb}}])
    with pytest.raises(TypeError) as err:
        getattr(optim, opt_name)([{"params": {a, b}}])
    assert str(err.value) == str(t_err.value)
    for params in ({a, b}, frozenset([a, b])):
        with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts, but got .*set"):
            getattr(optim, opt_name)(params)


def test_load_state_dict_takes_torch_parameters_that_require_grad():
    """``dict(torch_model.named_parameters())`` holds tensors that refuse ``np.asarray``: detach them."""
    t_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.0), nn.Linear(4, 2))
    params = dict(t_model.named_parameters())
    assert all(p.requires_grad for p in params.values())
    model.load_state_dict(params)
    for name, tp in params.items():
        _exact(dict(model.named_parameters())[name], tp, name)
    assert all(p.grad is None for p in params.values())
