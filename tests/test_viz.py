"""minigrad.viz (graph drawing, summary, gradient recorder) and minigrad.diagnostics (gradient through time).

Numbers are checked against PyTorch (per-step gradients of the same RNN) or against exact identities (the
per-step terms of dL/dW_hh add up to what the shared weight receives); DOT text goes through a small parser.
"""
import io
import re
import shutil
import subprocess
import sys
import warnings
from collections import Counter

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, viz
from minigrad.diagnostics import gradient_through_time, plot_gradient_through_time, require_matplotlib

NODE = re.compile(r'^(\w+) \[(.*)\];$')
EDGE = re.compile(r'^(\w+) -> (\w+)( \[.*\])?;$')


def parse_dot(text):
    """Check DOT text line by line; return (nodes {id: label}, edges [(a, b)], clusters {name: [ids]}).

    Invisible edges (layout hints) are checked but not returned.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    assert lines[0] == "digraph minigrad {" and lines[-1] == "}"
    nodes, edges, hints, clusters, open_clusters, depth = {}, [], [], {}, [], 0
    for line in lines:
        depth += line.count("{") - line.count("}")
        assert depth >= 0, line
        if line.startswith("subgraph cluster_"):
            name = line.split()[1]
            assert line.endswith("{") and name not in clusters
            clusters[name] = []
            open_clusters.append(name)
        elif line == "}":
            if open_clusters:
                open_clusters.pop()
        elif EDGE.match(line):
            a, b, attrs = EDGE.match(line).groups()
            (hints if attrs == " [style=invis]" else edges).append((a, b))
        elif NODE.match(line):
            ident, attrs = NODE.match(line).groups()
            if ident in ("graph", "node", "edge"):
                continue
            assert ident not in nodes, f"node {ident} declared twice"
            nodes[ident] = re.search(r'label="((?:[^"\\]|\\.)*)"', attrs).group(1)
            for name in open_clusters:
                clusters[name].append(ident)
        else:
            assert line.startswith(("digraph", "label=")), f"unexpected DOT line: {line}"
    assert depth == 0
    for a, b in edges + hints:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges, clusters


def step_clusters(clusters):
    return {name: ids for name, ids in clusters.items() if name.startswith("cluster_step_")}


def cell_loop(steps, h=None, seed=0, batch=2):
    """A hand-written loop over an RNNCell with each step marked; returns (cell, head, loss, states)."""
    mg.manual_seed(seed)
    cell, head = nn.RNNCell(3, 4), nn.Linear(4, 1)
    x = mg.randn(steps, batch, 3)
    states, loss = [], 0.0
    for t in range(steps):
        h = viz.mark_step(cell(x[t], h), t)
        states.append(h)
        loss = loss + head(h).sum()
    return cell, head, loss, states


def test_one_cluster_per_time_step_with_named_parameters():
    cell, _, loss, _ = cell_loop(6)
    nodes, _, clusters = parse_dot(viz.to_dot(loss, params=cell))
    steps = step_clusters(clusters)
    assert len(steps) == 6
    for ids in steps.values():  # each step holds its own tanh, its two linear maps (addmm, as torch's) and add
        labels = [nodes[i] for i in ids]
        assert sum(label.startswith("TanhBackward") for label in labels) == 1
        assert sum(label.startswith("AddmmBackward") for label in labels) == 2
        assert sum(label.startswith("AddBackward") for label in labels) == 1
    labels = list(nodes.values())
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert sum(label.startswith(name + "\\n") for label in labels) == 1  # shared: one node, not six
    assert "TanhBackward\\n(2, 4)" in labels


def test_truncation_boundary_is_marked_where_the_state_enters_without_gradient():
    # Window 1 runs from a zero state, window 2 from window 1's detached state: both enter without gradient.
    cell, _, loss1, states = cell_loop(3)
    *_, loss2, _ = cell_loop(3, h=states[-1].detach())
    for loss in (loss1, loss2):
        nodes, edges, _ = parse_dot(viz.to_dot(loss, params=cell))
        cuts = [i for i, label in nodes.items() if label.startswith("detached")]
        assert len(cuts) == 1
        (target,) = [b for a, b in edges if a == cuts[0]]
        assert nodes[target].startswith("AddmmBackward")  # the h @ W_hh^T + b_hh of the first step
    # A state that carries gradient in (full BPTT across the boundary) is not a cut.
    h0 = mg.zeros(2, 4, requires_grad=True)
    *_, loss3, _ = cell_loop(3, h=h0)
    nodes, _, _ = parse_dot(viz.to_dot(loss3))
    assert not any(label.startswith("detached") for label in nodes.values())


def test_layers_and_directions_nest_their_steps():
    mg.manual_seed(0)
    cells = {(layer, d): nn.RNNCell(3 if layer == 0 else 8, 4) for layer in range(2) for d in range(2)}
    x = mg.randn(5, 2, 3)
    layer_in = list(x.unbind(0))
    for layer in range(2):
        outs = {}
        for d in range(2):
            h = None
            for t in (range(5) if d == 0 else range(4, -1, -1)):
                h = outs[(d, t)] = viz.mark_step(cells[(layer, d)](layer_in[t], h), t, layer, d)
        layer_in = [mg.cat([outs[(0, t)], outs[(1, t)]], dim=1) for t in range(5)]
    loss = mg.stack(layer_in).sum()
    _, _, clusters = parse_dot(viz.to_dot(loss))
    assert len(step_clusters(clusters)) == 2 * 2 * 5
    for layer in range(2):
        assert f"cluster_layer{layer}" in clusters
        for d in range(2):
            inner = clusters[f"cluster_layer{layer}_dir{d}"]
            for t in range(5):
                assert set(clusters[f"cluster_step_l{layer}_d{d}_t{t}"]) <= set(inner)


def test_collapse_keeps_first_and_last_steps():
    _, _, loss, _ = cell_loop(8)
    nodes, edges, clusters = parse_dot(viz.to_dot(loss, collapse=2))
    assert sorted(step_clusters(clusters)) == [f"cluster_step_l0_d0_t{t}" for t in (0, 1, 6, 7)]
    outputs = sorted(name for name in clusters if name.startswith("cluster_out_"))
    assert outputs == [f"cluster_out_l0_d0_t{t}" for t in (0, 1, 6, 7)]  # a hidden step's head goes with it
    (more,) = [i for i, label in nodes.items() if label.startswith("... 4 more steps (t = 2 .. 5)")]
    assert any(a == more for a, _ in edges) and any(b == more for _, b in edges)
    with pytest.raises(ValueError, match="collapse"):
        viz.to_dot(loss, collapse=0)


def test_gradient_recorder_sees_dl_dh_and_colours_nodes():
    _, _, loss, states = cell_loop(5)
    for h in states:
        h.retain_grad()
    with viz.GradientRecorder(loss) as rec:
        loss.backward()
    for h in states:
        assert rec.norms[h.grad_fn] == pytest.approx(np.linalg.norm(h.grad.data), rel=1e-6)
    nodes, _, _ = parse_dot(viz.to_dot(loss, grad_norms=rec))
    legend = nodes.pop("legend")
    assert legend.startswith("node colour: |dL/d output|")
    ops_and_leaves = [label for label in nodes.values() if not label.startswith("detached")]
    assert all("|grad|" in label for label in ops_and_leaves)  # backward reached every node


def test_summary_counts_ops_depth_and_saved_memory():
    _, _, loss, _ = cell_loop(4)
    text = viz.summary(loss, file=io.StringIO())
    counts = dict(re.findall(r"^  (\w+)\s+(\d+)", text, re.MULTILINE))
    assert int(counts["TanhBackward"]) == 4
    assert int(counts["AccumulateGrad"]) == 6  # 4 cell parameters + the head's weight and bias
    depth = int(re.search(r"depth (\d+)", text).group(1))
    assert depth > 4 * 3  # every step adds at least matmul -> add -> tanh to the longest path
    assert re.search(r"saved for backward: [\d.]+ (B|KB)", text)
    assert "marked steps: layer 0 forward: 4 (t = 0 .. 3)" in text
    loss.backward()
    assert "freed" in viz.summary(loss, file=io.StringIO())


def test_draw_graph_writes_dot_and_renders_when_graphviz_is_there(tmp_path, monkeypatch):
    _, _, loss, _ = cell_loop(3)
    path = viz.draw_graph(loss, tmp_path / "g.dot")
    parse_dot(path.read_text())
    if shutil.which("dot"):
        svg = viz.draw_graph(loss, tmp_path / "g.svg")
        assert svg.suffix == ".svg" and "<svg" in svg.read_text()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = viz.draw_graph(loss, tmp_path / "h.png")
    assert written == tmp_path / "h.dot" and not (tmp_path / "h.png").exists()
    assert "install Graphviz" in str(caught[0].message)
    with pytest.raises(ValueError, match="unsupported"):
        viz.draw_graph(loss, tmp_path / "g.jpg")


def test_graphless_inputs_are_refused():
    with pytest.raises(ValueError, match="no graph"):
        viz.to_dot(mg.randn(3))
    with pytest.raises(TypeError):
        viz.to_dot(np.zeros(3))


def test_nn_rnn_steps_are_clustered():
    rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True)
    out, _ = rnn(mg.randn(5, 2, 3))
    nodes, _, clusters = parse_dot(viz.to_dot(out, params=rnn))
    assert len(step_clusters(clusters)) == 2 * 2 * 5
    cuts = [i for i, label in nodes.items() if label.startswith("detached")]
    assert len(cuts) == 4  # h0 = zeros enters each layer and direction once


def cluster_of(clusters, ident, prefix):
    """The innermost cluster named ``prefix...`` that holds node ``ident`` (None if none does)."""
    holding = [name for name, ids in clusters.items() if name.startswith(prefix) and ident in ids]
    return max(holding, key=len, default=None)


def test_two_layer_bidirectional_rnn_nodes_sit_in_their_own_layer():
    # Layer 0's outputs are joined (stack, cat) and fed to layer 1's input projections: the joins used to
    # land in layer 1's box.
    mg.manual_seed(0)
    rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True)
    out, h_n = rnn(mg.randn(5, 2, 3))
    nodes, edges, clusters = parse_dot(viz.to_dot([out.sum(), h_n.sum()], params=rnn))
    layer = {i: cluster_of(clusters, i, "cluster_layer") for i in nodes}
    for name, ids in step_clusters(clusters).items():  # every step in its own layer and direction
        l, d = re.fullmatch(r"cluster_step_l(\d)_d(\d)_t\d", name).groups()
        assert all(layer[i] == f"cluster_layer{l}_dir{d}" for i in ids)
    for ident, label in nodes.items():  # every parameter in the layer and direction its name says
        named = re.fullmatch(r"\w+_l(\d)(_reverse)?\\n.*", label)
        if named:
            assert layer[ident] == f"cluster_layer{named.group(1)}_dir{int(bool(named.group(2)))}", label
    for a, b in edges:
        if a in clusters["cluster_layer0"] and b not in clusters["cluster_layer0"]:
            # only what leaves layer 0 as a whole -- its joined output, h_n -- is read from outside it
            assert nodes[a].startswith("CatBackward") or nodes[b].startswith("StackBackward"), nodes[a]
        # the data flows from layer 0 into layer 1, never back
        assert not (a in clusters["cluster_layer1"] and b in clusters["cluster_layer0"])
    readers = {b for a, b in edges if cluster_of(clusters, a, "cluster_step_l0")}
    joins = [i for i in readers if nodes[i].startswith("StackBackward") and layer[i] is not None]
    # each direction's stack of its steps sits in that direction's box
    assert sorted(layer[i] for i in joins) == ["cluster_layer0_dir0", "cluster_layer0_dir1"]
    (h_n_stack,) = [i for i in readers if i not in clusters["cluster_layer0"]]  # h_n mixes every layer
    assert layer[h_n_stack] is None


def char_rnn(steps, seed=0):
    """The hello model: a cell looped by hand, an output head and a loss term per step."""
    class CharModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.RNNCell(4, 8)
            self.head = nn.Linear(8, 4)

    mg.manual_seed(seed)
    model = CharModel()
    h, loss = None, 0.0
    for t in range(steps):
        h = viz.mark_step(model.cell(mg.tensor(np.eye(4, dtype=np.float32)[[t % 4]]), h), t)
        loss = loss + nn.functional.cross_entropy(model.head(h), [(t + 1) % 4])
    return model, loss


def test_each_step_has_a_labelled_output_cluster():
    _, loss = char_rnn(4)
    text = viz.to_dot(loss)
    nodes, edges, clusters = parse_dot(text)
    for t in range(4):
        ids = clusters[f"cluster_out_l0_d0_t{t}"]
        labels = {nodes[i].split("\\n")[0] for i in ids}
        assert {"PermuteBackward", "AddmmBackward", "LogSoftmaxBackward", "NllLossBackward"} <= labels
        assert f'label="output of t = {t}"' in text
        (head,) = [i for i in ids if nodes[i].startswith("AddmmBackward")]
        # the head reads this step's state, from this step's cluster
        assert any(a in clusters[f"cluster_step_l0_d0_t{t}"] and nodes[a].startswith("TanhBackward")
                   for a, b in edges if b == head)
    weights = [i for i, label in nodes.items() if label.startswith("head.weight")]
    assert len(weights) == 1 and cluster_of(clusters, weights[0], "cluster_") is None  # shared: outside


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot to lay the graph out")
def test_steps_are_laid_out_in_time_order(tmp_path):
    _, loss = char_rnn(5)
    text = viz.to_dot(loss)
    _, _, clusters = parse_dot(text)
    plain = subprocess.run(["dot", "-Tplain"], input=text, capture_output=True, text=True, check=True).stdout
    height = {f[1]: float(f[3]) for f in (line.split() for line in plain.splitlines()) if f[0] == "node"}
    for t in range(4):  # every op of step t + 1 lies below every op of step t, and step t's output below it
        assert max(height[i] for i in clusters[f"cluster_step_l0_d0_t{t + 1}"]) < \
            min(height[i] for i in clusters[f"cluster_step_l0_d0_t{t}"])
        step_output = min(height[i] for i in clusters[f"cluster_step_l0_d0_t{t}"])
        assert max(height[i] for i in clusters[f"cluster_out_l0_d0_t{t}"]) < step_output


def test_parameters_are_named_by_their_module_without_params():
    model, loss = char_rnn(3)
    nodes, _, _ = parse_dot(viz.to_dot(loss))
    leaves = sorted(label.split("\\n")[0] for label in nodes.values() if "(" in label and "Backward" not in label)
    assert leaves == sorted(["cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh", "head.weight",
                             "head.bias"])
    # Another module holding one layer does not rename it: the module holding most of the graph names it.
    class Holder(nn.Module):
        pass

    holder = Holder()
    holder.only = model.head
    pytest.importorskip("torch")  # its lazy deprecated aliases warn when their class is asked for
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # looking for the modules touches nothing else
        assert viz.to_dot(loss) == viz.to_dot(loss, params=model)
    # A bare module is named the same way; explicit names still win.
    rnn = nn.RNN(3, 4, num_layers=2)
    out, _ = rnn(mg.randn(2, 1, 3))
    assert viz.to_dot(out) == viz.to_dot(out, params=rnn)
    assert "weight_hh_l1\\n" in viz.to_dot(out)
    nodes, _, _ = parse_dot(viz.to_dot(out, params={"W": rnn.weight_hh_l1}))
    names = [label.split("\\n")[0] for label in nodes.values() if not label.startswith(("detached", "Permute"))
             and "Backward" not in label]
    assert sorted(names) == ["W"] + ["leaf"] * 7
    del holder


# ---- gradient through time -------------------------------------------------------------------------------
def torch_per_step(rnn, x):
    """Torch's dL/dh_t and dL/dW_hh for L = mean(h_T), unrolled by hand with the same weights."""
    torch = pytest.importorskip("torch")
    w_ih, w_hh, b_ih, b_hh = (torch.tensor(np.asarray(p.data, np.float64), requires_grad=True)
                              for p in rnn.all_weights[0])
    h = torch.zeros(x.shape[1], w_hh.shape[0], dtype=torch.float64)
    hs = []
    for t in range(x.shape[0]):
        h = torch.tanh(torch.from_numpy(x[t]) @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        h.retain_grad()
        hs.append(h)
    hs[-1].mean().backward()
    return np.array([np.linalg.norm(h.grad.numpy()) for h in hs]), w_hh.grad.numpy()


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_gradient_through_time_matches_torch_and_the_shared_weight(scale):
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    rnn = nn.RNN(3, 32, dtype=mg.float64)
    rnn.weight_hh_l0.data[...] = scale * rng.standard_normal((32, 32)) / np.sqrt(32)
    x = 0.5 * rng.standard_normal((30, 2, 3))
    result = gradient_through_time(rnn, x)
    dh, dw = torch_per_step(rnn, x)
    np.testing.assert_allclose(result.dh_norms, dh, rtol=1e-9)
    np.testing.assert_allclose(result.weight_hh_grad, dw, rtol=1e-8, atol=1e-12 * np.abs(dw).max())
    # The per-step terms add up to what nn.RNN's shared weight receives in an ordinary backward pass.
    out, _ = rnn(mg.tensor(x))
    out[-1].mean().backward()
    np.testing.assert_allclose(result.step_grads.sum(0), rnn.weight_hh_l0.grad.data, rtol=1e-8,
                               atol=1e-12 * np.abs(dw).max())
    assert rnn.weight_ih_l0.grad is not None and result.dw_norms[0] == 0.0  # h0 = 0: step 0 adds nothing
    if scale < 1:
        assert result.dh_norms[0] < 1e-6 * result.dh_norms[-1]   # vanishing
    else:
        assert result.dh_norms[0] > 1e2 * result.dh_norms[-1]    # exploding


def test_clipped_scales_like_clip_grad_norm():
    torch = pytest.importorskip("torch")
    mg.manual_seed(1)
    cell = nn.RNNCell(3, 5, dtype=mg.float64)
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    result = gradient_through_time(cell, x, loss_fn=lambda hs: (hs * hs).sum() * 100)
    params = [torch.tensor(np.asarray(p.data), requires_grad=True) for p in cell.parameters()]
    w_ih, w_hh, b_ih, b_hh = params
    h = torch.zeros(2, 5, dtype=torch.float64)
    hs = []
    for t in range(6):
        h = torch.tanh(torch.from_numpy(x[t]) @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        hs.append(h)
    ((torch.stack(hs) ** 2).sum() * 100).backward()
    total = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
    assert result.grad_norm == pytest.approx(total, rel=1e-9)
    clipped = result.clipped(1.0)
    np.testing.assert_allclose(clipped.weight_hh_grad, w_hh.grad.numpy(), rtol=1e-9)
    assert clipped.grad_norm == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(clipped.dh_norms, result.dh_norms)


def test_gradient_through_time_rejects_what_it_cannot_follow():
    with pytest.raises(ValueError, match="one recurrence"):
        gradient_through_time(nn.RNN(3, 4, num_layers=2), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="inputs must be"):
        gradient_through_time(nn.RNNCell(3, 4), np.zeros((5, 2, 7)))
    with pytest.raises(TypeError):
        gradient_through_time(nn.Linear(3, 4), np.zeros((5, 3)))


def test_plot_gradient_through_time(tmp_path, monkeypatch):
    r = gradient_through_time(nn.RNNCell(2, 3), np.ones((4, 2)))
    try:
        require_matplotlib()
    except ModuleNotFoundError:
        pass  # the message is checked below
    else:
        path = plot_gradient_through_time({"run": r}, tmp_path / "g.png", clip=1e-3)
        assert path.read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ModuleNotFoundError, match="pip install matplotlib"):
        plot_gradient_through_time({"run": r}, tmp_path / "h.png")


# The ops of one step of each gated cell (counts by op, as ``nn.LSTM`` / ``nn.GRU`` record them): the state's
# product with W_hh (plus the step's input projection), the gates' split, their activations and products.
GATED_STEP_OPS = {
    nn.LSTM: {"AddmmBackward": 1, "SplitBackward": 1, "SigmoidBackward": 3, "TanhBackward": 2, "MulBackward": 3,
              "AddBackward": 1},
    # h' = (1 - z) * n + z * h: r * h_n, (1 - z) * n and z * h; the fused kernel's order
    nn.GRU: {"AddmmBackward": 1, "SplitBackward": 2, "SigmoidBackward": 2, "TanhBackward": 1, "MulBackward": 3,
             "AddBackward": 4, "SubBackward": 1},
}


def gated_graph(cls, layers, bidirectional, steps=4):
    mg.manual_seed(0)
    rnn = cls(3, 4, num_layers=layers, bidirectional=bidirectional)
    out, state = rnn(mg.randn(steps, 2, 3))
    finals = state if isinstance(state, tuple) else (state,)
    return parse_dot(viz.to_dot([out.sum()] + [s.sum() for s in finals]))


def op_name(label):
    return label.split("\\n")[0]


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_gated_cell_nodes_sit_in_their_layer_direction_and_step(cls, layers, bidirectional):
    nodes, edges, clusters = gated_graph(cls, layers, bidirectional)
    directions = 2 if bidirectional else 1
    steps = step_clusters(clusters)
    assert len(steps) == layers * directions * 4

    def chain_box(layer, d):
        return f"cluster_layer{layer}_dir{d}" if bidirectional else f"cluster_layer{layer}"

    in_step = {}
    for name, ids in steps.items():
        layer, d, t = map(int, re.fullmatch(r"cluster_step_l(\d)_d(\d)_t(\d)", name).groups())
        ops = Counter(op_name(nodes[i]) for i in ids)
        assert ops == GATED_STEP_OPS[cls], (name, ops)
        for i in ids:
            assert cluster_of(clusters, i, "cluster_layer") == chain_box(layer, d)
            in_step[i] = (layer, d, t)
    # every activation and gate product of the recurrence is in a step; every parameter in its chain's box
    for ident, label in nodes.items():
        if op_name(label) in ("SigmoidBackward", "TanhBackward", "SplitBackward", "MulBackward"):
            assert ident in in_step, label
        named = re.fullmatch(r"\w+_l(\d)(_reverse)?", op_name(label))
        if named:
            assert cluster_of(clusters, ident, "cluster_layer") == chain_box(int(named.group(1)),
                                                                            int(bool(named.group(2))))
    # an edge between two steps joins consecutive steps of one chain, in the order they ran
    for a, b in edges:
        if a in in_step and b in in_step and in_step[a] != in_step[b]:
            (la, da, ta), (lb, db, tb) = in_step[a], in_step[b]
            assert (la, da) == (lb, db) and tb == ta + (1 if da == 0 else -1), (in_step[a], in_step[b])


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_lstm_cell_state_path_runs_from_step_to_step(layers, bidirectional):
    # c_t = f_t * c_{t-1} + i_t * g_t: each step's sum (c_t) feeds the next step's product with its forget
    # gate, which feeds that step's sum -- the additive path an LSTM's gradient travels back along.
    nodes, edges, clusters = gated_graph(nn.LSTM, layers, bidirectional)
    ops = {i: op_name(label) for i, label in nodes.items()}
    where = {i: name for name, ids in step_clusters(clusters).items() for i in ids}
    feeds = {(a, b) for a, b in edges}

    def cell_state(step):
        (c,) = [i for i in clusters[step] if ops[i] == "AddBackward"]
        return c

    for layer in range(layers):
        for d in range(2 if bidirectional else 1):
            order = range(4) if d == 0 else range(3, -1, -1)
            chain = [f"cluster_step_l{layer}_d{d}_t{t}" for t in order]
            for before, after in zip(chain, chain[1:]):
                c_prev, c_next = cell_state(before), cell_state(after)
                forget = [b for a, b in feeds if a == c_prev and where.get(b) == after]
                assert len(forget) == 1 and ops[forget[0]] == "MulBackward", (before, after)
                assert (forget[0], c_next) in feeds
                # c_t also makes h_t = o_t * tanh(c_t) in its own step
                assert any(ops[b] == "TanhBackward" and where.get(b) == before for a, b in feeds if a == c_prev)
