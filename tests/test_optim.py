"""Optimisers and gradient clipping against torch.optim / torch.nn.utils on the same model."""
import numpy as np
import pytest
import torch
from nn_torch_helpers import TORCH_DTYPE, assert_close, assert_params_match, pair, torch_twin

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn.utils import clip_grad_norm_, clip_grad_value_


class Model(nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.rnn = nn.RNN(3, 5, num_layers=2, dtype=dtype)
        self.head = nn.Linear(5, 2, dtype=dtype)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


class TorchModel(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.rnn = torch.nn.RNN(3, 5, num_layers=2, dtype=dtype)
        self.head = torch.nn.Linear(5, 2, dtype=dtype)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def _models(dtype, seed=0):
    mg.manual_seed(seed)
    model = Model(dtype)
    return model, torch_twin(model, TorchModel(TORCH_DTYPE[dtype]))


def _data(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 3)).astype(dtype)
    y = rng.standard_normal((6, 4, 2)).astype(dtype)
    return pair(x), pair(y)


def _train(model, opt, x, y, steps, max_norm, lib):
    """``steps`` updates with MSE loss and norm clipping; returns the losses and the pre-clip norms."""
    losses, norms = [], []
    for _ in range(steps):
        opt.zero_grad()
        if lib is torch:
            loss = torch.nn.functional.mse_loss(model(x), y)
        else:
            loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        clip = torch.nn.utils.clip_grad_norm_ if lib is torch else clip_grad_norm_
        norms.append(float(clip(model.parameters(), max_norm)))
        opt.step()
        losses.append(float(loss.item()))
    return losses, norms


CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.1, "amsgrad": True, "eps": 1e-6}),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimizer_steps_with_clipping_match_torch(name, kwargs, dtype):
    model, tmodel = _models(dtype)
    (x, tx), (y, ty) = _data(dtype)
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(tmodel.parameters(), **kwargs)
    losses, norms = _train(model, opt, x, y, 6, 0.3, mg)
    tlosses, tnorms = _train(tmodel, topt, tx, ty, 6, 0.3, torch)
    assert max(norms) > 0.3  # clipping was active
    assert_close(losses, tlosses, dtype, "losses")
    assert_close(norms, tnorms, dtype, "pre-clip norms")
    assert_params_match(model, tmodel, dtype)


def test_param_groups_match_torch():
    model, tmodel = _models(np.float64)
    (x, tx), (y, ty) = _data(np.float64)
    opt = optim.SGD([{"params": model.rnn.parameters(), "lr": 0.05}, {"params": model.head.parameters()}],
                    lr=0.2, momentum=0.5)
    topt = torch.optim.SGD([{"params": tmodel.rnn.parameters(), "lr": 0.05},
                            {"params": tmodel.head.parameters()}], lr=0.2, momentum=0.5)
    _train(model, opt, x, y, 3, 10.0, mg)
    _train(tmodel, topt, tx, ty, 3, 10.0, torch)
    assert_params_match(model, tmodel, np.float64)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[1]["lr"] == 0.2


@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                         ("Adam", {"lr": 0.01, "amsgrad": True})])
def test_state_dict_round_trip(name, kwargs):
    (x, _), (y, _) = _data(np.float64)
    model, _ = _models(np.float64)
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    _train(model, opt, x, y, 3, 1.0, mg)
    saved_model = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    saved = opt.state_dict()
    _train(model, opt, x, y, 2, 1.0, mg)  # the uninterrupted run; must not alter the saved copy

    resumed, _ = _models(np.float64, seed=99)
    resumed.load_state_dict(saved_model)
    opt2 = getattr(optim, name)(resumed.parameters(), lr=123.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    _train(resumed, opt2, x, y, 2, 1.0, mg)
    for (n, p), (_, q) in zip(model.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


def test_torch_optimizer_state_loads():
    model, tmodel = _models(np.float64)
    (x, tx), (y, ty) = _data(np.float64)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01)
    _train(tmodel, topt, tx, ty, 2, 1.0, torch)
    model.load_state_dict(tmodel.state_dict())
    opt = optim.Adam(model.parameters(), lr=0.01)
    opt.load_state_dict(topt.state_dict())
    assert opt.state[model.head.weight]["step"] == 2
    _train(model, opt, x, y, 2, 1.0, mg)
    _train(tmodel, topt, tx, ty, 2, 1.0, torch)
    assert_params_match(model, tmodel, np.float64)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf"), 0.0])
def test_clip_grad_norm_matches_torch(norm_type):
    rng = np.random.default_rng(3)
    params, tparams = zip(*[pair(rng.standard_normal(s), requires_grad=True) for s in [(3, 4), (5,), (2, 2)]])
    for p, tp in zip(params[:2], tparams[:2]):  # the last one has no grad: skipped
        g = rng.standard_normal(p.shape) * 3
        p.grad, tp.grad = mg.tensor(g.copy()), torch.from_numpy(g.copy())
    total = clip_grad_norm_(params, 1.5, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 1.5, norm_type=norm_type)
    assert isinstance(total, mg.Tensor)
    assert_close(total, ttotal, np.float64, "total norm")
    for p, tp in zip(params[:2], tparams[:2]):
        assert_close(p.grad, tp.grad, np.float64, "clipped grad")
    assert params[2].grad is None
    small = nn.Parameter(np.ones(2))
    small.grad = mg.tensor(np.array([0.1, 0.2]))
    clip_grad_norm_(small, 10.0)  # below the limit: the factor is clamped to 1
    np.testing.assert_array_equal(small.grad.data, [0.1, 0.2])


def test_clip_grad_nonfinite_and_value():
    p, tp = pair(np.ones(2), requires_grad=True)
    p.grad, tp.grad = mg.tensor(np.array([np.inf, 1.0])), torch.tensor([np.inf, 1.0], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_([p], 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_([tp], 1.0)
    assert float(total) == float(ttotal) == np.inf
    np.testing.assert_array_equal(p.grad.data, tp.grad.numpy())
    q, tq = pair(np.ones(4), requires_grad=True)
    g = np.array([-3.0, 0.5, 2.0, -0.1])
    q.grad, tq.grad = mg.tensor(g.copy()), torch.from_numpy(g.copy())
    clip_grad_value_([q], 1.0)
    torch.nn.utils.clip_grad_value_([tq], 1.0)
    np.testing.assert_array_equal(q.grad.data, tq.grad.numpy())
    assert float(clip_grad_norm_([], 1.0)) == 0.0


def test_zero_grad_and_errors():
    lin = nn.Linear(2, 2)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    lin(mg.ones(1, 2)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert lin.weight.grad is not None and not lin.weight.grad.data.any()
    opt.zero_grad()
    assert lin.weight.grad is None
    opt.step()  # no gradients: nothing to do
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.SGD(lin.parameters(), lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD(lin.parameters(), lr=1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 0: 1.0"):
        optim.Adam(lin.parameters(), betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Invalid epsilon value"):
        optim.AdamW(lin.parameters(), eps=-1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([1.0], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([lin.weight, lin.weight], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([lin.weight * 2], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
