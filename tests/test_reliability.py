"""Long-running training stays sound: flat memory over thousands of truncated-BPTT windows, graphs freed
without the garbage collector, correct results from concurrent threads, anomaly detection on a diverging
RNN, and checkpoints that survive crashes and refuse damaged files.

torch is imported inside the tests that compare against it, so that the soak test's child process (which
imports this module) measures minigrad's memory alone.
"""
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref

import numpy as np
import pytest

import minigrad as mg
from minigrad import _backend, nn, optim, tbptt
from minigrad.serialization import CheckpointError

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


class Predictor(nn.Module):
    """A 2-layer RNN with a linear read-out: the model shape ``tbptt.run`` expects."""

    def __init__(self, features=4, hidden=16, dtype=None):
        super().__init__()
        self.rnn = nn.RNN(features, hidden, num_layers=2, dtype=dtype)
        self.head = nn.Linear(hidden, features, dtype=dtype)

    def forward(self, x, h):
        out, h = self.rnn(x, h)
        return self.head(out), h


def _graph_nodes(t):
    """Every node reachable from ``t.grad_fn`` except the leaves' AccumulateGrad nodes (those live as long as
    their parameter)."""
    seen, stack = {}, [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(edge[0] for edge in node.next_functions if edge is not None)
    return [n for n in seen.values() if not isinstance(n, mg.autograd.AccumulateGrad)]


# ---- memory ----------------------------------------------------------------------------------------------
def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _live_counts():
    # type() rather than isinstance: some objects' __class__ is a property with side effects (torch warns)
    types = [type(o) for o in gc.get_objects()]
    return (sum(issubclass(t, mg.Tensor) for t in types), len(mg.autograd.live_nodes()))


def soak(windows=2000, k=8, batch=4, per_pass=100, warmup=200):
    """Truncated-BPTT training of a 2-layer RNN with Adam and clipping, ``per_pass`` windows per
    ``tbptt.run`` call.  Returns the resident memory after each pass and the live tensor/node counts at the
    end of warm-up, half-way and at the end."""
    mg.manual_seed(0)
    model = Predictor()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    # phase-shifted sine waves: a signal the model can learn, so the soak is real training
    t = np.arange(windows * k + 1)[:, None, None]
    steps = np.sin(0.2 * t + np.arange(batch)[:, None] + np.arange(4)).astype(np.float32)
    h = None
    rss, counts, pass_losses = [], {}, []
    for start in range(0, windows, per_pass):
        # consecutive passes share one boundary step: the last target of one is the first input of the next
        losses, h = tbptt.run(model, nn.functional.mse_loss, steps[start * k:(start + per_pass) * k + 1], k,
                              optimizer=opt, h=h, max_norm=1.0)
        pass_losses.append(float(np.mean(losses)))  # a per-window list would itself grow by 32 bytes a window
        done = start + per_pass
        rss.append((done, _rss()))
        if done in (warmup, windows // 2, windows):
            counts[done] = _live_counts()
    return {"rss": rss, "counts": counts, "windows": done, "losses": [pass_losses[0], pass_losses[-1]]}


def test_memory_flat_over_2000_tbptt_windows():
    code = (f"import json, sys; sys.path.insert(0, {HERE!r}); import test_reliability as t; "
            "print(json.dumps(t.soak()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    assert res["windows"] == 2000
    assert res["losses"][1] < 0.5 * res["losses"][0]  # it trains
    warm = dict(res["rss"])[200]
    peak = max(v for n, v in res["rss"] if n >= 200)
    assert peak <= 1.05 * warm, f"RSS grew from {warm / 1e6:.1f} MB to {peak / 1e6:.1f} MB: {res['rss']}"
    (t0, n0), (t1, n1), (t2, n2) = (res["counts"][key] for key in ("200", "1000", "2000"))
    assert max(t1, t2) <= 1.05 * t0 and max(n1, n2) <= 1.05 * n0, res["counts"]


def test_rnn_graph_released_without_garbage_collector():
    """Once backward has run and the user drops the outputs, every node of an unrolled 2-layer RNN is freed by
    reference counting alone: the graph holds no cycles."""
    model = Predictor()
    x = mg.randn(12, 3, 4)
    gc.collect()
    gc.disable()
    try:
        out, h = model(x, None)
        loss = nn.functional.mse_loss(out, x) + h.sum()
        refs = [weakref.ref(n) for n in _graph_nodes(loss)]
        assert len(refs) > 12 * 2 * 2  # at least addmm and tanh per step and layer
        loss.backward()
        del out, h, loss
        assert sum(r() is not None for r in refs) == 0
        # the same without ever running backward: dropping the outputs frees the recorded graph
        out, h = model(x, None)
        refs = [weakref.ref(n) for n in _graph_nodes(out)]
        del out, h
        assert sum(r() is not None for r in refs) == 0
    finally:
        gc.enable()


def test_tbptt_pass_leaves_no_graph_behind():
    """After a ``tbptt.run`` pass, with the collector off, no graph node is alive but the parameters' own
    accumulators: the detached state carried between windows pins nothing."""
    model = Predictor()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    streams = np.random.default_rng(1).standard_normal((41, 2, 4)).astype(np.float32)
    gc.collect()
    gc.disable()
    try:
        before = _graph_node_ids()  # other tests' live graphs, if any, are not this test's business
        _, h = tbptt.run(model, nn.functional.mse_loss, streams, 5, 8, optimizer=opt, max_norm=1.0)
        assert _graph_node_ids() - before == set() and h.grad_fn is None
    finally:
        gc.enable()


def _graph_node_ids():
    return {id(o) for o in mg.autograd.live_nodes() if type(o) is not mg.autograd.AccumulateGrad}


# ---- threads ---------------------------------------------------------------------------------------------
def _rnn_step(model, x, target):
    """Loss and parameter gradients of one forward/backward (the model's gradients are reset first)."""
    model.zero_grad()
    out, h = model(x, None)
    loss = nn.functional.mse_loss(out, target) + (h * h).mean()
    loss.backward()
    return loss.item(), [p.grad.data.copy() for p in model.parameters()]


def _thread_case(seed):
    mg.manual_seed(seed)
    model = Predictor(features=8, hidden=48, dtype=mg.float64)
    rng = np.random.default_rng(seed)
    return model, mg.tensor(rng.standard_normal((10, 16, 8))), mg.tensor(rng.standard_normal((10, 16, 8)))


def _torch_step(model, x, target):
    import torch
    rnn = torch.nn.RNN(8, 48, num_layers=2, dtype=torch.float64)
    head = torch.nn.Linear(48, 8, dtype=torch.float64)
    state = {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    rnn.load_state_dict({k[len("rnn."):]: v for k, v in state.items() if k.startswith("rnn.")})
    head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
    out, h = rnn(torch.from_numpy(x.numpy()))
    loss = torch.nn.functional.mse_loss(head(out), torch.from_numpy(target.numpy())) + (h * h).mean()
    loss.backward()
    return loss.item(), [p.grad.numpy() for p in [*rnn.parameters(), *head.parameters()]]


@pytest.mark.parametrize("kernel_threads", [1, 2])
def test_two_threads_training_separate_graphs_match_single_threaded_and_torch(kernel_threads):
    previous = _backend.get_num_threads()
    _backend.set_num_threads(kernel_threads)
    try:
        cases = [_thread_case(seed) for seed in (1, 2)]
        expected = [_rnn_step(*case) for case in cases]
        for case, (loss, grads) in zip(cases, expected):
            t_loss, t_grads = _torch_step(*case)
            assert loss == pytest.approx(t_loss, rel=1e-12)
            for g, tg in zip(grads, t_grads):
                np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-12)
        mismatches = [[], []]
        start = threading.Barrier(2)

        def worker(i):
            start.wait()
            for it in range(100):
                loss, grads = _rnn_step(*cases[i])
                same = loss == expected[i][0] and all(map(np.array_equal, grads, expected[i][1]))
                if not same:
                    mismatches[i].append(it)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert mismatches == [[], []]
    finally:
        _backend.set_num_threads(previous)


def test_grad_and_anomaly_modes_are_per_thread():
    """One thread inside no_grad + detect_anomaly while the other records a graph and sees neither."""
    entered, checked = threading.Event(), threading.Event()
    seen = {}

    def inside():
        with mg.no_grad(), mg.autograd.detect_anomaly():
            entered.set()
            checked.wait(10)
            seen["inside"] = (mg.is_grad_enabled(), mg.autograd.is_anomaly_enabled(),
                              (mg.ones(2, requires_grad=True) * 2).grad_fn)

    t = threading.Thread(target=inside)
    t.start()
    assert entered.wait(10)
    x = mg.ones(2, requires_grad=True)
    seen["outside"] = (mg.is_grad_enabled(), mg.autograd.is_anomaly_enabled(), (x * 2).grad_fn is not None,
                       (x.log() - 1e9).exp().grad_fn is not None)  # 0.0 would raise in anomaly mode
    checked.set()
    t.join()
    assert seen == {"inside": (False, True, None), "outside": (True, False, True, True)}


@pytest.mark.skipif(_backend.name != "c", reason="the compiled kernels are not in use")
def test_kernels_release_the_gil():
    """While one thread is inside a long matmul, a pure-Python thread keeps running (a kernel holding the GIL
    would freeze it for the whole call)."""
    previous = _backend.get_num_threads()
    _backend.set_num_threads(1)
    a = np.random.default_rng(0).standard_normal((1200, 1200))
    ticks, stop = [], threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            for _ in range(200):
                pass
    spinner = threading.Thread(target=spin)
    try:
        spinner.start()
        while not ticks:
            time.sleep(0.001)
        t0 = time.perf_counter()
        c = _backend.matmul(a, a)
        t1 = time.perf_counter()
    finally:
        stop.set()
        spinner.join()
        _backend.set_num_threads(previous)
    middle = [t for t in ticks if t0 + 0.25 * (t1 - t0) < t < t1 - 0.25 * (t1 - t0)]
    assert middle, f"no Python progress during a {t1 - t0:.3f} s kernel call"
    np.testing.assert_allclose(c, a @ a, rtol=1e-10, atol=1e-9)


# ---- anomaly detection ------------------------------------------------------------------------------------
def _diverging_rnn():
    """A relu RNN whose recurrent weights multiply the state by ~1000 per step: float32 overflows."""
    mg.manual_seed(3)
    rnn = nn.RNN(3, 8, num_layers=2, nonlinearity="relu")
    with mg.no_grad():
        rnn.weight_hh_l0.fill_(1000.0)
    return rnn, mg.rand(30, 2, 3) + 0.5


def test_detect_anomaly_names_first_overflowing_op_of_a_diverging_rnn():
    rnn, x = _diverging_rnn()
    out, _ = rnn(x)
    assert not np.isfinite(out.sum().item())  # without the detector the loss is silently inf/nan
    with mg.autograd.detect_anomaly(), \
            pytest.raises(FloatingPointError, match=r"(?s)^(Matmul|Add|Addmm) produced inf.*rnn\.py") as info:
        rnn(x)
    assert "_run_layer" in str(info.value)


def test_detect_anomaly_names_backward_op_when_only_gradients_go_nan():
    """A finite loss whose gradient is not: sqrt of an exactly zero sum of squares (a dead relu RNN)."""
    rnn = nn.RNN(3, 4, nonlinearity="relu", bias=False)
    with mg.no_grad():
        for p in rnn.parameters():
            p.fill_(-1.0)
    out, _ = rnn(mg.rand(5, 2, 3))
    loss = (out * out).sum().sqrt()
    assert loss.item() == 0.0
    with mg.autograd.detect_anomaly():
        out, _ = rnn(mg.rand(5, 2, 3))
        loss = (out * out).sum().sqrt()
        with pytest.raises(FloatingPointError, match=r"(?s)SqrtBackward.*inf.*test_reliability\.py"):
            loss.backward()


def test_detect_anomaly_as_decorator_on_a_graph_built_outside_and_restored_after_errors():
    rnn, x = _diverging_rnn()
    with mg.no_grad():
        rnn.weight_hh_l0.fill_(0.0)
    out, _ = rnn(x)                   # recorded outside the detector: no creation stack to show
    loss = (out - out.detach()).abs().sum().sqrt()    # 0, whose sqrt has an infinite derivative

    @mg.autograd.detect_anomaly()
    def step():
        loss.backward()

    with pytest.raises(FloatingPointError, match=r"^Function 'SqrtBackward' returned inf values in its 0th "
                                                 r"output$"):
        step()
    assert not mg.autograd.is_anomaly_enabled()


# ---- checkpoints ---------------------------------------------------------------------------------------
def _train(model, opt, streams, h=None):
    _, h = tbptt.run(model, nn.functional.mse_loss, streams, 5, optimizer=opt, h=h, max_norm=1.0)
    return h


def _params(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("make_opt", [lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
                                      lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)])
def test_resuming_from_a_checkpoint_equals_uninterrupted_training(tmp_path, make_opt):
    streams = np.random.default_rng(0).standard_normal((61, 3, 4)).astype(np.float32)
    mg.manual_seed(0)
    model = Predictor()
    opt = make_opt(model.parameters())
    h = _train(model, opt, streams[:31])
    path = tmp_path / "ckpt.npz"
    mg.save({"model": model.state_dict(), "optim": opt.state_dict(), "h": h, "config": {"k": 5, "lr": 1e-2}},
         path)
    _train(model, opt, streams[30:], h)

    mg.manual_seed(1)  # a different initialisation, overwritten by the checkpoint
    resumed = Predictor()
    resumed_opt = make_opt(resumed.parameters())
    ckpt = mg.load(path)
    resumed.load_state_dict(ckpt["model"])
    resumed_opt.load_state_dict(ckpt["optim"])
    assert ckpt["config"] == {"k": 5, "lr": 1e-2}
    _train(resumed, resumed_opt, streams[30:], ckpt["h"])
    for key, value in _params(model).items():
        np.testing.assert_array_equal(resumed.state_dict()[key].numpy(), value, err_msg=key)


def test_checkpoint_round_trip_keeps_types_dtypes_and_nesting(tmp_path):
    obj = {
        "t64": mg.tensor([[1.0, 2.0]], dtype=mg.float64, requires_grad=True),
        "t32": mg.zeros(0, 3),
        "param": nn.Parameter(mg.ones(2)),
        "arrays": [np.arange(5), np.array([True, False]), np.ones((2, 0), np.float16), np.array(1 + 2j)],
        "scalars": (np.float32(0.5), np.int64(7), 3, 2.5, float("nan"), float("-inf"), True, None, "text"),
        7: {"nested": {"deeper": [[], {}, ()]}},
        None: "none key",
    }
    path = tmp_path / "obj.npz"
    mg.save(obj, path)
    back = mg.load(str(path))
    assert list(back) == list(obj)
    assert type(back["param"]) is nn.Parameter and back["param"].requires_grad
    assert back["t64"].requires_grad and back["t64"].is_leaf and back["t64"].dtype == mg.float64
    assert back["t32"].shape == (0, 3) and back["t32"].dtype == mg.float32
    for mine, orig in zip(back["arrays"], obj["arrays"]):
        assert mine.dtype == orig.dtype and mine.shape == orig.shape and np.array_equal(mine, orig)
    s = back["scalars"]
    assert type(s) is tuple and type(s[0]) is np.float32 and type(s[1]) is np.int64
    assert s[2:4] == (3, 2.5) and np.isnan(s[4]) and s[5:] == (float("-inf"), True, None, "text")
    assert back[7] == {"nested": {"deeper": [[], {}, ()]}} and back[None] == "none key"


def test_failed_save_keeps_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    mg.save({"w": mg.ones(3)}, path)

    def disk_full(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        mg.save({"w": mg.zeros(3)}, path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    np.testing.assert_array_equal(mg.load(path)["w"].numpy(), np.ones(3))


def test_process_killed_mid_save_never_leaves_a_broken_checkpoint(tmp_path):
    """A child saves a large checkpoint over and over; SIGKILL it at several moments.  The file at ``path`` is
    always a complete checkpoint, old or new."""
    path = tmp_path / "ckpt.npz"
    code = (f"import sys, numpy as np; sys.path.insert(0, {REPO!r})\n"
            "import minigrad as mg\n"
            "big = np.arange(3_000_000, dtype=np.float64)\n"
            "i = 0\n"
            "while True:\n"
            f"    mg.save({{'i': i, 'w': big + i}}, {str(path)!r}); print(i, flush=True); i += 1\n")
    for delay in (0.05, 0.13, 0.29):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        first = child.stdout.readline().strip()  # "0" once one checkpoint exists
        if first == "0":
            time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
        assert first == "0", err
        ckpt = mg.load(path)
        np.testing.assert_array_equal(ckpt["w"], np.arange(3_000_000) + ckpt["i"])


def _damaged(data, how):
    if how == "truncated":
        return data[: len(data) * 2 // 3]
    if how == "empty":
        return b""
    if how == "bit flip in data":
        i = len(data) // 2
        return data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:]
    return b"not a checkpoint at all\n" * 10


@pytest.mark.parametrize("how", ["truncated", "empty", "bit flip in data", "garbage"])
def test_damaged_checkpoint_raises_and_leaves_model_unchanged(tmp_path, how):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    mg.save(Predictor().state_dict(), good)
    bad.write_bytes(_damaged(good.read_bytes(), how))
    model = Predictor()
    before = _params(model)
    with pytest.raises(CheckpointError, match=r"bad\.npz.*(truncated|corrupted|not a minigrad checkpoint)"):
        model.load_state_dict(mg.load(bad))
    for key, value in _params(model).items():
        np.testing.assert_array_equal(value, before[key])


def test_every_single_bit_flip_is_detected_or_harmless(tmp_path):
    """Flip one bit at 300 positions: loading either raises CheckpointError or (for zip metadata nobody reads,
    such as timestamps) returns exactly the saved values -- never another exception or different numbers."""
    path = tmp_path / "ckpt.npz"
    model = Predictor()
    mg.save({"model": model.state_dict(), "step": 3}, path)
    data = path.read_bytes()
    expected = _params(model)
    rng = np.random.default_rng(0)
    for pos, bit in zip(rng.integers(0, len(data), 300), rng.integers(0, 8, 300)):
        path.write_bytes(data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1:])
        try:
            back = mg.load(path)
        except CheckpointError:
            continue
        assert back["step"] == 3 and list(back["model"]) == list(expected), pos
        for key, value in expected.items():
            assert np.array_equal(back["model"][key].numpy(), value), (pos, key)


def test_mismatched_checkpoint_names_the_problem_and_leaves_model_unchanged(tmp_path):
    path = tmp_path / "other.npz"
    mg.save(Predictor(hidden=12).state_dict(), path)
    model = Predictor()
    before = _params(model)
    with pytest.raises(RuntimeError, match=r"size mismatch for rnn\.weight_ih_l0.*\(12, 4\).*\(16, 4\)"):
        model.load_state_dict(mg.load(path))
    for key, value in _params(model).items():
        np.testing.assert_array_equal(value, before[key])
