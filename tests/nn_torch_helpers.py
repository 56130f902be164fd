"""Shared helpers for the nn / rnn / optim / tbptt tests: moving weights to torch and comparing with it."""
import numpy as np
import torch

import minigrad as mg

# The tolerances the issue sets for results after BPTT.
TOL = {np.float64: {"rtol": 1e-9, "atol": 1e-10}, np.float32: {"rtol": 2e-4, "atol": 2e-5}}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def assert_close(actual, expected, dtype=None, what=""):
    """Compare a minigrad tensor or array with a torch tensor or array at the tolerance for ``dtype``."""
    a = np.asarray(actual.data if isinstance(actual, mg.Tensor) else actual)
    e = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch {e.shape}"
    np.testing.assert_allclose(a, e, err_msg=what, **tol(dtype or a.dtype))


def to_torch_state(module):
    """A minigrad module's state dict as torch tensors (copies)."""
    return {k: torch.from_numpy(np.array(v.numpy())) for k, v in module.state_dict().items()}


def torch_twin(mg_module, torch_module):
    """Load ``mg_module``'s weights into ``torch_module`` (same configuration) and return it."""
    torch_module.load_state_dict(to_torch_state(mg_module))
    return torch_module


def assert_grads_match(mg_module, torch_module, dtype):
    """Every parameter's gradient (by name) equals torch's."""
    t_params = dict(torch_module.named_parameters())
    names = [n for n, _ in mg_module.named_parameters()]
    assert names == list(t_params), f"parameter names/order differ: {names} vs {list(t_params)}"
    for name, p in mg_module.named_parameters():
        tp = t_params[name]
        assert (p.grad is None) == (tp.grad is None), name
        if p.grad is not None:
            assert_close(p.grad, tp.grad, dtype, "grad of " + name)


def assert_params_match(mg_module, torch_module, dtype):
    for name, tp in torch_module.named_parameters():
        assert_close(dict(mg_module.named_parameters())[name], tp, dtype, name)


def pair(array, requires_grad=False):
    """The same values as a minigrad tensor and a torch tensor (separate storage)."""
    array = np.array(array)
    return (mg.tensor(array.copy(), requires_grad=requires_grad),
            torch.tensor(array.copy(), requires_grad=requires_grad))
