"""The pure-Python reference engine (minigrad/autograd/reference.py) against the compiled one and torch."""
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.autograd import engine as _engine
from minigrad.autograd import reference

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def use_reference(monkeypatch):
    monkeypatch.setattr(_engine, "ENGINE", "reference")


def _rnn_steps(lib, x, w, h):
    """An unrolled recurrence: unbind (a multi-output node whose slices tanh's backward writes into in the
    compiled engine), a weight used at every step and as W.T (lazily summed products)."""
    states = []
    for t, xt in enumerate(x.unbind(0)):
        h = (xt + h @ (w if t % 2 else w.T)).tanh()
        states.append(h)
    return lib.stack(states).sum() + (states[-1] * states[0]).sum()


def _elementwise(lib, x, w, h):
    y = (x.sigmoid() * 3 + x.exp() / (1 + x * x)).tanh()
    return (y * y).mean() + (y.sum(0) * w[0].abs()).sum() - h.relu().sum()


def _diamond(lib, x, w, h):
    a = h * 2
    b, c = a.tanh(), a.sigmoid()
    return (b * c + a).sum() + (w @ w).sum()


def _reductions(lib, x, w, h):
    z = lib.cat([h, h * 2], 0)
    return (z.softmax(1) * z).sum() + z.logsumexp(1).sum() + z.max(0)[0].sum() + z.mean(1).sum()


def _split(lib, x, w, h):
    a, b = h.split(2, 1)
    return (a.tanh() * b).sum() + (a.T @ b).sum()


def _linear(lib, x, w, h):
    f = lib.nn.functional
    return (f.linear(h, w, w[0]).tanh() + f.linear(h, w.T, None)).pow(2).sum()


GRAPHS = {"rnn": _rnn_steps, "elementwise": _elementwise, "diamond": _diamond, "reductions": _reductions,
          "split": _split, "linear": _linear}


def _leaves(lib, dtype, seed):
    rng = np.random.default_rng(seed)
    vals = [rng.standard_normal((5, 3, 4)), rng.standard_normal((4, 4)) * 0.5, rng.standard_normal((3, 4))]
    return [lib.tensor(v.astype(dtype), requires_grad=True) for v in vals]


def _run(lib, graph, dtype, hook):
    x, w, h = _leaves(lib, dtype, 7)
    seen = []
    if hook:
        h2 = h * 1.5
        h2.register_hook(lambda g: seen.append(np.array(g.numpy() if lib is torch else g.data)) or g * 2)
        h2.retain_grad()
        loss = GRAPHS[graph](lib, x, w, h2)
    else:
        loss = GRAPHS[graph](lib, x, w, h)
    loss.backward()
    out = [None if t.grad is None else np.array(t.grad.numpy() if lib is torch else t.grad.data)
           for t in (x, w, h)]
    if hook:
        out += [np.array(h2.grad.numpy() if lib is torch else h2.grad.data)] + seen
    return out


@pytest.mark.parametrize("graph", list(GRAPHS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hook", [False, True])
def test_reference_and_compiled_engines_match_torch(graph, dtype, hook, monkeypatch):
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-4, "atol": 2e-5}
    theirs = _run(torch, graph, dtype, hook)
    for engine in ("compiled", "reference"):
        monkeypatch.setattr(_engine, "ENGINE", engine)
        mine = _run(mg, graph, dtype, hook)
        assert len(mine) == len(theirs)
        for k, (m, t) in enumerate(zip(mine, theirs)):
            assert (m is None) == (t is None), (engine, k)
            if m is not None:
                assert m.dtype == dtype
                np.testing.assert_allclose(m, t, err_msg="%s engine, result %d" % (engine, k), **tol)


def test_hundred_thousand_node_chain(use_reference):
    x = mg.tensor(np.array([0.5]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.data[0] == 1.0


def test_saved_arrays_freed_unless_retain_graph(use_reference):
    x = mg.tensor(np.array([0.5, 1.0]), requires_grad=True)
    y = x.tanh()
    node = y.grad_fn
    y.sum().backward(retain_graph=True)
    assert node.saved_arrays is not None and not node.freed
    y.sum().backward()
    assert node.saved_arrays is None and node.freed
    np.testing.assert_allclose(x.grad.data, 2 * (1 - np.tanh([0.5, 1.0]) ** 2), rtol=1e-14)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.sum().backward()


def test_leaf_gradient_accumulates_and_graph_is_released(use_reference):
    x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    for _ in range(3):
        (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [6.0, 12.0])
    y = (x * 3).tanh()
    ref = weakref.ref(y.grad_fn)
    y.sum().backward()
    del y
    assert ref() is None


def test_anomaly_mode_names_the_node(use_reference):
    x = mg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = x.sqrt()
    with mg.autograd.detect_anomaly():
        z = (y * 2).sum()
        with pytest.raises(FloatingPointError, match="SqrtBackward.*inf.*0th output"):
            z.backward()


def test_reference_engine_fits_its_line_budget():
    """It is the engine to read first: micrograd-sized."""
    assert len(Path(reference.__file__).read_text().splitlines()) <= 150


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def test_engine_is_chosen_by_the_environment_at_import():
    code = "import minigrad; print(minigrad.autograd.engine_name())"
    for value, want in (("reference", "reference"), ("compiled", "compiled"), ("", "compiled")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=_env(MINIGRAD_ENGINE=value), timeout=120)
        assert out.stdout.strip() == want
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env=_env(MINIGRAD_ENGINE="fast"), timeout=120)
    assert bad.returncode != 0
    assert "MINIGRAD_ENGINE must be 'compiled' or 'reference', got 'fast'" in bad.stderr


def test_op_engine_and_rnn_suites_pass_under_the_reference_engine():
    """CI's check that both engines give torch's gradients on the op, engine and RNN suites (~30 s)."""
    files = ["tests/test_ops.py", "tests/test_engine.py", "tests/test_rnn.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                         capture_output=True, text=True, check=False, cwd=ROOT,
                         env=_env(MINIGRAD_ENGINE="reference", MINIGRAD_HYPOTHESIS_PROFILE="ci"), timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]
