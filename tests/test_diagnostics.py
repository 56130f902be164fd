"""diagnostics.gradient_through_time on gated cells: ||dL/dh_t||, an LSTM's ||dL/dc_t|| and every step's term
of dL/dW_hh against torch running the same recurrence by hand (retain_grad on each state)."""
import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad import nn
from minigrad.diagnostics import gradient_through_time


def _torch_gated(kind, params, x, h0=None, c0=None):
    """The recurrence in torch with hand-written gates: (||dL/dh_t||, ||dL/dc_t|| or None, dL/dW_hh) for the
    loss sum(h_t * w_t) over all steps (a different weight per element)."""
    p = {k: None if v is None else torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True)
         for k, v in params.items()}
    batch = x.shape[1]
    hidden = p["weight_hh"].shape[1]
    h = torch.zeros(batch, hidden, dtype=torch.float64) if h0 is None else torch.from_numpy(h0)
    c = None
    if kind == "LSTM":
        c = torch.zeros(batch, p["weight_hh"].shape[0] // 4, dtype=torch.float64) if c0 is None else \
            torch.from_numpy(c0)
    b_ih = 0 if p["bias_ih"] is None else p["bias_ih"]
    b_hh = 0 if p["bias_hh"] is None else p["bias_hh"]
    hs, cs = [], []
    for t in range(x.shape[0]):
        gi = torch.from_numpy(x[t]) @ p["weight_ih"].T + b_ih
        gh = h @ p["weight_hh"].T + b_hh
        if kind == "LSTM":
            i, f, g, o = (gi + gh).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if p.get("weight_hr") is not None:
                h = h @ p["weight_hr"].T
            c.retain_grad()
            cs.append(c)
        else:
            i_r, i_z, i_n = gi.chunk(3, 1)
            h_r, h_z, h_n = gh.chunk(3, 1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
        h.retain_grad()
        hs.append(h)
    stacked = torch.stack(hs)
    weights = torch.from_numpy(np.random.default_rng(3).standard_normal(tuple(stacked.shape)))
    (stacked * weights).sum().backward()
    dc = np.array([np.linalg.norm(c.grad.numpy()) for c in cs]) if cs else None
    return np.array([np.linalg.norm(h.grad.numpy()) for h in hs]), dc, p["weight_hh"].grad.numpy(), weights


def _params(module):
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    named = {k.removesuffix("_l0"): v.data for k, v in module.named_parameters()}
    return {k: named.get(k) for k in names}


@pytest.mark.parametrize("kind,options", [("LSTM", {}), ("LSTM", {"proj_size": 3, "bias": False}),
                                          ("GRU", {}), ("GRU", {"bias": False}), ("LSTMCell", {}),
                                          ("GRUCell", {})])
def test_gated_gradient_through_time_matches_torch(kind, options):
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    module = getattr(nn, kind)(3, 6, dtype=mg.float64, **options)
    x = rng.standard_normal((12, 2, 3))
    base = kind.removesuffix("Cell")
    h0 = rng.standard_normal((2, options.get("proj_size", 6)))
    c0 = rng.standard_normal((2, 6))
    dh, dc, dw, weights = _torch_gated(base, _params(module), x, h0, c0)
    w = mg.tensor(weights.numpy())
    result = gradient_through_time(module, x, loss_fn=lambda hs: (hs * w).sum(),
                                   h0=(h0, c0) if base == "LSTM" else h0)
    np.testing.assert_allclose(result.dh_norms, dh, rtol=1e-9)
    np.testing.assert_allclose(result.weight_hh_grad, dw, rtol=1e-8, atol=1e-12 * np.abs(dw).max())
    assert result.step_grads.shape == (12,) + dw.shape
    if base == "LSTM":
        np.testing.assert_allclose(result.dc_norms, dc, rtol=1e-9)
        assert np.array_equal(result.clipped(1e-3).dc_norms, result.dc_norms)  # not a parameter gradient
    else:
        assert result.dc_norms is None


def test_lstm_step_terms_add_up_to_the_shared_weight_gradient():
    """The per-step terms equal what nn.LSTM's shared W_hh receives in an ordinary backward pass, and the
    cell state carries the gradient further back than h alone would suggest (its additive path)."""
    mg.manual_seed(1)
    lstm = nn.LSTM(3, 8, dtype=mg.float64)
    x = 0.5 * np.random.default_rng(1).standard_normal((20, 2, 3))
    result = gradient_through_time(lstm, x)
    out, _ = lstm(mg.tensor(x))
    out[-1].mean().backward()
    grad = lstm.weight_hh_l0.grad.data
    np.testing.assert_allclose(result.weight_hh_grad, grad, rtol=1e-8, atol=1e-12 * np.abs(grad).max())
    assert result.dw_norms[0] == 0.0 and result.dc_norms[-1] > 0  # h0 = 0: step 0 adds nothing to dL/dW_hh
    assert np.all(result.dc_norms[:-1] > 0)


def test_gated_errors():
    with pytest.raises(ValueError, match="one recurrence"):
        gradient_through_time(nn.LSTM(3, 4, bidirectional=True), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="one recurrence"):
        gradient_through_time(nn.GRU(3, 4, num_layers=2), np.zeros((5, 3)))
    with pytest.raises(TypeError, match=r"pair \(h0, c0\)"):
        gradient_through_time(nn.LSTMCell(3, 4), np.zeros((5, 2, 3)), h0=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"c0 must be \(2, 4\)"):
        gradient_through_time(nn.LSTMCell(3, 4), np.zeros((5, 2, 3)), h0=(np.zeros((2, 4)), np.zeros((2, 5))))
