"""Module machinery (registration, names, state dicts, modes) and the feed-forward layers vs torch.nn."""
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from nn_torch_helpers import TORCH_DTYPE, assert_close, assert_grads_match, pair, to_torch_state, torch_twin

import minigrad as mg
from minigrad import nn


class Net(nn.Module):
    def __init__(self, lib):
        super().__init__()
        self.emb = lib.Embedding(7, 3)
        self.rnn = lib.RNN(3, 4, num_layers=2)
        self.blocks = lib.ModuleList([lib.Linear(4, 4), lib.Linear(4, 2, bias=False)])
        self.head = lib.Sequential(lib.Linear(2, 5), lib.Dropout(0.1))


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(7, 3)
        self.rnn = torch.nn.RNN(3, 4, num_layers=2)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 2, bias=False)])
        self.head = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Dropout(0.1))


def test_named_parameters_and_state_dict_keys_match_torch():
    net, tnet = Net(nn), TorchNet()
    ours = [(n, tuple(p.shape)) for n, p in net.named_parameters()]
    assert ours == [(n, tuple(p.shape)) for n, p in tnet.named_parameters()]
    assert list(net.state_dict()) == list(tnet.state_dict())
    assert [n for n, _ in net.named_modules()] == [n for n, _ in tnet.named_modules()]
    assert len(list(net.parameters())) == 14
    assert isinstance(net.blocks[1], nn.Linear) and net.blocks[-1] is net.blocks[1]
    assert len(net.head) == 2 and isinstance(net.head[0], nn.Linear)
    # The state dict's values share storage with the parameters and carry no graph.
    sd = net.state_dict()
    assert sd["emb.weight"].data is net.emb.weight.data and not sd["emb.weight"].requires_grad


def test_state_dict_loads_across_libraries_and_array_kinds():
    mg.manual_seed(0)
    net, tnet = Net(nn), TorchNet()
    tnet.load_state_dict(to_torch_state(net))
    for name, tp in tnet.named_parameters():
        np.testing.assert_array_equal(dict(net.named_parameters())[name].data, tp.detach().numpy())
    tnet2 = TorchNet()
    for kind in (lambda t: t, lambda t: t.numpy(), lambda t: t.numpy().tolist()):
        net.load_state_dict({k: kind(v) for k, v in tnet2.state_dict().items()})
        for name, tp in tnet2.named_parameters():
            ours = dict(net.named_parameters())[name].data
            np.testing.assert_allclose(ours, tp.detach().numpy(), rtol=1e-7)
    # Loading copies in place (optimisers keep seeing the same Parameter) and casts to the parameter's dtype.
    w = net.emb.weight
    net.load_state_dict({k: v.double() for k, v in tnet.state_dict().items()})
    assert net.emb.weight is w and w.dtype == np.float32


def test_load_state_dict_errors():
    net = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "bias"'):
        net.load_state_dict({"weight": np.zeros((2, 3))})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        net.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2), "extra": np.zeros(1)})
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape \(3, 2\)"):
        net.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(2)})
    with pytest.raises(RuntimeError, match="size mismatch"):  # shapes are checked even when not strict
        net.load_state_dict({"weight": np.zeros((3, 2))}, strict=False)
    before = net.weight.data.copy()
    with pytest.raises(RuntimeError):
        net.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(3)})
    np.testing.assert_array_equal(net.weight.data, before)  # nothing copied when any check fails
    result = net.load_state_dict({"weight": np.ones((2, 3)), "other": 1.0}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(net.weight.data, np.ones((2, 3)))
    with pytest.raises(TypeError):
        net.load_state_dict([("weight", np.zeros((2, 3)))])


def test_train_eval_zero_grad_and_registration():
    net = Net(nn)
    assert net.training and net.head[1].training
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    out = net.blocks[0](mg.ones(2, 4))
    out.sum().backward()
    assert net.blocks[0].weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert not net.blocks[0].weight.grad.data.any()
    net.zero_grad()
    assert net.blocks[0].weight.grad is None
    # Plain tensors are attributes, not parameters; None keeps a declared slot (like a disabled bias).
    net.scale = mg.ones(1)
    assert "scale" not in dict(net.named_parameters())
    with pytest.raises(TypeError):
        net.blocks[0].weight = mg.ones(4, 4)
    shared = nn.Linear(2, 2)
    pair_net = nn.Sequential(shared, shared)
    assert len(list(pair_net.parameters())) == 2  # a shared module's parameters are listed once
    assert list(pair_net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = net.missing


def test_repr_matches_torch():
    assert repr(nn.Linear(3, 4)) == repr(torch.nn.Linear(3, 4))
    assert repr(nn.Embedding(5, 3)) == repr(torch.nn.Embedding(5, 3))
    assert repr(nn.Embedding(5, 3, padding_idx=0)) == repr(torch.nn.Embedding(5, 3, padding_idx=0))
    seq = nn.Sequential(nn.Linear(3, 4), nn.ModuleList([nn.Linear(1, 2)]))
    tseq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ModuleList([torch.nn.Linear(1, 2)]))
    assert repr(seq) == repr(tseq)
    assert repr(nn.Dropout(0.2)).startswith("Dropout(p=0.2")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_matches_torch(dtype):
    mg.manual_seed(1)
    lin = nn.Linear(5, 3, dtype=dtype)
    tlin = torch_twin(lin, torch.nn.Linear(5, 3, dtype=TORCH_DTYPE[dtype]))
    x, tx = pair(np.random.default_rng(0).standard_normal((2, 4, 5)).astype(dtype), requires_grad=True)
    w = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(dtype)
    out, tout = lin(x), tlin(tx)
    (out * mg.tensor(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    assert_close(out, tout, dtype, "out")
    assert_close(x.grad, tx.grad, dtype, "x grad")
    assert_grads_match(lin, tlin, dtype)
    bound = 1 / math.sqrt(5)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    assert nn.Linear(5, 3, bias=False).bias is None
    with pytest.raises(RuntimeError):
        lin(mg.zeros(2, 4, dtype=dtype))


def test_embedding_matches_torch_and_padding_idx():
    mg.manual_seed(2)
    emb = nn.Embedding(6, 3, padding_idx=2, dtype=mg.float64)
    temb = torch_twin(emb, torch.nn.Embedding(6, 3, padding_idx=2, dtype=torch.float64))
    assert not emb.weight.data[2].any()
    ids = np.array([[0, 2, 5], [5, 5, 2]])
    w = np.random.default_rng(0).standard_normal((2, 3, 3))
    out, tout = emb(ids), temb(torch.from_numpy(ids))
    (out * mg.tensor(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    assert_close(out, tout, np.float64, "lookup")
    assert_grads_match(emb, temb, np.float64)  # row 5 accumulates three uses; row 2 gets nothing
    assert emb(3).shape == (3,) and emb([1, 4]).shape == (2, 3)
    values = nn.Embedding(1000, 10).weight.data
    assert abs(values.mean()) < 0.05 and abs(values.std() - 1) < 0.05  # N(0, 1) as in torch
    with pytest.raises(IndexError, match="index out of range"):
        emb([6])
    with pytest.raises(IndexError, match="index out of range"):
        emb([-1])
    with pytest.raises(TypeError):
        emb(np.array([0.5]))


def test_dropout_module_and_functional():
    mg.manual_seed(3)
    drop = nn.Dropout(0.25)
    x = mg.ones(200, 100, dtype=mg.float64, requires_grad=True)
    y = drop(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)  # d(x*mask)/dx = mask
    drop.eval()
    assert drop(x) is x
    assert not nn.functional.dropout(x, 1.0).data.any()
    for p in (-0.1, 1.2):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            nn.Dropout(p)


def test_parameter_and_module_basics():
    p = nn.Parameter(np.arange(3.0))
    assert p.requires_grad and p.is_leaf and p.dtype == np.float64 and isinstance(p, mg.Tensor)
    assert repr(p).startswith("Parameter containing:")
    assert not nn.Parameter(np.zeros(2), requires_grad=False).requires_grad
    with pytest.raises(NotImplementedError):
        nn.Module()(1)
    seq = nn.Sequential(OrderedDict([("lin", nn.Linear(2, 3)), ("act", nn.Dropout(0.0))]))
    assert [n for n, _ in seq.named_parameters()] == ["lin.weight", "lin.bias"]
    assert seq(mg.ones(4, 2)).shape == (4, 3)
    ml = nn.ModuleList()
    ml.append(nn.Linear(1, 1)).extend([nn.Linear(1, 2)])
    ml.insert(0, nn.Linear(2, 1))
    assert [m.out_features for m in ml] == [1, 1, 2] and len(ml[1:]) == 2
