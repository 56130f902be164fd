"""Look inside a recorded graph: Graphviz drawings, a text summary, and the gradient reaching every node.

Every op minigrad runs with gradients on leaves a ``Node`` behind (``tensor.grad_fn``); walking
``next_functions`` from a result down to the ``AccumulateGrad`` nodes of the leaves gives the whole graph the
engine will differentiate.  For an RNN that graph is the *unrolled* network: the same weight feeds one node
per time step.  This module draws it:

- ``to_dot`` / ``draw_graph``: one box per op with its output shape; parameters highlighted and named (by
  the modules holding them); time steps, layers and directions as clusters (from ``mark_step`` tags), the
  steps laid out in the order they ran, and what one step's output alone feeds (an output head and its
  loss term) as an "output of t" cluster; the place where a detached or initial state enters a recurrence
  marked as a truncation boundary; repeated steps collapsible; nodes coloured by the norm of their
  gradient when a ``GradientRecorder`` watched ``backward()``.
- ``summary``: node counts by op type, depth and saved memory, as text.

Nothing here needs a third-party package; rendering SVG/PNG calls Graphviz's ``dot`` program when it is on
``PATH``.
"""
from __future__ import annotations

import gc
import math
import shutil
import subprocess
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO, Union

import numpy as np

from minigrad.tensor import Tensor

__all__ = ["GradientRecorder", "draw_graph", "mark_step", "summary", "to_dot"]

Roots = Union[Tensor, Iterable[Tensor]]

_INSTALL_DOT = ("Graphviz's `dot` program is not on PATH; install Graphviz (apt-get install graphviz, "
                "brew install graphviz or conda install graphviz)")
# ColorBrewer's 9-class YlOrRd: pale for small gradient norms, dark red for large ones (log scale).
_HEAT = ["#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026", "#800026"]
_PARAM_FILL = "#9ecae1"
_LEAF_FILL = "#deebf7"
_ROOT_FILL = "#c7e9c0"


def mark_step(tensor: Tensor, step: int, layer: int = 0, direction: int = 0) -> Tensor:
    """Tag ``tensor`` as the output of time step ``step`` of ``layer`` (``direction`` 1 = reverse).

    ``to_dot`` clusters the op that produced it, and every op that only feeds the step, under that step.
    Mark each step's hidden state (and, if a step has several outputs, each of them); untracked tensors are
    returned unchanged.  Returns ``tensor``, so it can wrap an expression:
    ``h = mark_step(cell(x[t], h), t)``.
    """
    node = tensor.grad_fn
    if node is not None:
        node.tag = (int(layer), int(direction), int(step))  # a slot on the node: no lookup table to keep
    return tensor


class _Graph:
    """The nodes reachable from some roots, consumers before producers, with the edges between them."""

    def __init__(self, roots: Roots) -> None:
        tensors = [roots] if isinstance(roots, Tensor) else list(roots)
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise TypeError("expected a minigrad Tensor or a sequence of Tensors")
        self.roots = [n for n in dict.fromkeys(t.grad_fn for t in tensors) if n is not None]
        if not self.roots:
            raise ValueError("nothing to draw: the tensor has no graph (it does not require grad, or it was "
                             "computed under no_grad)")
        self.consumers: dict[Any, list[Any]] = {n: [] for n in self.roots}
        stack = list(self.roots)
        while stack:  # iterative: an unrolled RNN is deeper than Python's recursion limit
            node = stack.pop()
            for edge in node.next_functions:
                if edge is None:
                    continue
                nxt = edge[0]
                if nxt not in self.consumers:
                    self.consumers[nxt] = []
                    stack.append(nxt)
                self.consumers[nxt].append(node)
        # Kahn's order: a node comes after all of its consumers.
        waiting = {n: len(c) for n, c in self.consumers.items()}
        ready = [n for n in self.roots if waiting[n] == 0]
        self.order = []
        while ready:
            node = ready.pop()
            self.order.append(node)
            for edge in node.next_functions:
                if edge is not None:
                    waiting[edge[0]] -= 1
                    if waiting[edge[0]] == 0:
                        ready.append(edge[0])

    def depth(self) -> int:
        """Nodes on the longest path from a root down to a leaf."""
        longest = {}
        for node in reversed(self.order):
            below = [longest[e[0]] for e in node.next_functions if e is not None]
            longest[node] = 1 + max(below, default=0)
        return max(longest[r] for r in self.roots)

    def clusters(self) -> dict[Any, tuple]:
        """Each node's cluster: (layer,), (layer, direction) or (layer, direction, step); ("out", layer,
        direction, step) for what is computed from one step's output alone outside the recurrence (an output
        head, its loss term); () for none.

        A marked node is in its step.  A node that joins marked outputs (the stack or cat of a layer's
        steps or of its two directions, and joins of those joins) belongs with what it joins: the innermost
        cluster they share.  Any other node goes to the innermost cluster shared by all of its consumers, so
        the ops that only feed step t sit in t, the shared transposed weight in its layer, the next layer's
        input projection in that layer, and whatever mixes layers (or follows the RNN) outside -- unless
        only one step feeds it: then it is that step's output.
        """
        joined: dict[Any, tuple] = {}  # marked nodes and joins of them -> their cluster
        source: dict[Any, Any] = {}    # node -> the one step feeding it (its tag), _MANY, or None
        for node in reversed(self.order):  # producers first
            tag = node.tag
            inputs = [e[0] for e in node.next_functions if e is not None and e[0].name() != "AccumulateGrad"]
            if tag is not None:
                joined[node] = source[node] = tag
                continue
            if len(inputs) > 1 and all(n in joined for n in inputs):
                shared = joined[inputs[0]]
                for n in inputs[1:]:
                    shared = _common_prefix(shared, joined[n])
                if shared:
                    joined[node] = shared
            feeds = {source[n] for n in inputs} - {None}
            source[node] = feeds.pop() if len(feeds) == 1 else (_MANY if feeds else None)
        key: dict[Any, tuple] = {}
        for node in self.order:
            if node in joined:
                key[node] = joined[node]
                continue
            shared = None
            for consumer in self.consumers[node]:
                shared = key[consumer] if shared is None else _common_prefix(shared, key[consumer])
            if not shared and isinstance(source[node], tuple):
                shared = ("out",) + source[node]
            key[node] = shared if shared and (shared[0] != "out" or len(shared) == 4) else ()
        return key


_MANY = object()  # a node fed by several steps


def _common_prefix(a: tuple, b: tuple) -> tuple:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _boundaries(graph: _Graph, key: dict) -> list[tuple[Any, int]]:
    """(node, input slot) pairs where a recurrence's state enters a chain of steps without a gradient.

    In a marked chain, an input of step t that comes from another step is recurrent.  The same op in
    another step (same op type, same slot, same other inputs) with *no* edge in that slot received a state
    that does not require grad: a ``detach()``-ed state (a truncated-BPTT boundary) or a constant h0.
    """
    step_of = {n: k for n, k in key.items() if len(k) == 3}

    def describe(node, depth):
        # Inputs shared across steps (weights, their transposes) by identity; step-local ones by structure.
        if node not in step_of:
            return id(node)
        if depth == 0:
            return node.name()
        inputs = tuple(None if e is None else describe(e[0], depth - 1) for e in node.next_functions)
        return node.name(), inputs

    def role(node, slot):
        others = tuple(None if e is None else describe(e[0], 2)
                       for j, e in enumerate(node.next_functions) if j != slot)
        return node.name(), slot, step_of[node][:2], others

    recurrent = set()
    for node, k in step_of.items():
        for slot, edge in enumerate(node.next_functions):
            if edge is not None and edge[0] in step_of and step_of[edge[0]][2] != k[2]:
                recurrent.add(role(node, slot))
    return [(node, slot) for node in step_of for slot, edge in enumerate(node.next_functions)
            if edge is None and role(node, slot) in recurrent]


def _names(params: Any, graph: _Graph) -> dict[int, str]:
    """id(tensor) -> name from a Module, a name->tensor mapping or (name, tensor) pairs; for None, the names
    the graph's parameters have in the live modules that hold them (``_module_names``)."""
    if params is None:
        return _module_names(graph)
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    elif isinstance(params, Mapping):
        params = params.items()
    return {id(p): name for name, p in params}


def _module_names(graph: _Graph) -> dict[int, str]:
    """id(parameter) -> its ``named_parameters`` name in the outermost live Module holding it.

    Found when drawing, from the garbage collector's list of live objects: modules keep no registry, so
    building a model or running it costs nothing extra.  A parameter held by several top-level modules
    takes its name from the one holding the most of the graph's parameters (the model, not a stray layer).
    """
    from minigrad.nn.module import Module, Parameter
    wanted = set()
    for node in graph.order:
        if node.name() == "AccumulateGrad" and isinstance(node.variable, Parameter):
            wanted.add(id(node.variable))
    if not wanted:
        return {}
    # type(), not isinstance: that would read __class__, which some lazy objects (torch's deprecated
    # aliases) answer with a warning
    modules = [m for m in gc.get_objects() if issubclass(type(m), Module)]
    inner = {id(c) for m in modules for c in m.children()}
    found = []
    for root in modules:
        if id(root) not in inner:
            named = {id(p): name for name, p in root.named_parameters() if id(p) in wanted}
            if named:
                found.append(named)
    names: dict[int, str] = {}
    for named in sorted(found, key=len):  # the module covering most of the graph is applied last and wins
        names.update(named)
    return names


def _shape_text(node) -> str:
    if node.multi_output:
        shapes = list(node.shape)
        if len(set(shapes)) == 1:
            return f"{len(shapes)} x {_fmt_shape(shapes[0])}"
        return ", ".join(_fmt_shape(s) for s in shapes)
    return _fmt_shape(node.shape)


def _fmt_shape(shape) -> str:
    return str(tuple(int(d) for d in shape))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**kw: Any) -> str:
    return "[" + ", ".join(f"{k}={_quote(str(v))}" for k, v in kw.items() if v is not None) + "]"


class GradientRecorder:
    """Watch ``backward()`` and keep the norm of the gradient that reaches every node of a graph.

    Create it on the result *before* calling backward; afterwards ``norms`` maps each node (``grad_fn`` or
    a leaf's ``AccumulateGrad``) to the 2-norm of the gradient with respect to its output(s) -- the total over
    every path, which for a hidden state h_t is dL/dh_t.  Pass it to ``to_dot``/``draw_graph`` as
    ``grad_norms`` to colour the nodes.  As a context manager it removes its hooks on exit::

        with viz.GradientRecorder(loss) as rec:
            loss.backward()
        viz.draw_graph(loss, "graph.svg", grad_norms=rec)
    """

    def __init__(self, roots: Roots) -> None:
        self._squares: dict[Any, float] = defaultdict(float)
        self._handles = []
        for node in _Graph(roots).order:
            for nr in range(node.n_outputs):
                self._handles.append(node._register_pre_hook(nr, self._hook(node)))

    def _hook(self, node):
        def record(grad: Tensor) -> None:
            g = grad.data
            self._squares[node] += float(np.vdot(g, g))
        return record

    @property
    def norms(self) -> dict[Any, float]:
        return {node: math.sqrt(s) for node, s in self._squares.items()}

    def remove(self) -> None:
        """Unregister the hooks (the norms already recorded stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def to_dot(roots: Roots, *, params: Any = None, grad_norms: GradientRecorder | Mapping | None = None,
           collapse: int | None = None, rankdir: str = "TB", title: str | None = None) -> str:
    """The graph behind ``roots`` as Graphviz DOT text.

    Args:
        roots: a tensor (usually the loss) or several.
        params: names for the leaves: a Module (``named_parameters()``), a name -> tensor mapping or
            (name, tensor) pairs.  By default every parameter is named as in the outermost live Module
            holding it (``model.named_parameters()``), so drawing a model's loss names its weights with no
            argument.  Parameters are filled blue, other leaves that require grad pale blue.
        grad_norms: a ``GradientRecorder`` (or node -> norm mapping) from a backward pass: ops are then
            coloured by the log of their gradient norm, pale (small) to dark red (large), grey when none
            reached them; every node's label gains its norm.
        collapse: keep only the first and last ``collapse`` marked steps of every layer and direction; the
            steps between become one node (they repeat the same ops on the same weights).
        rankdir: Graphviz layout direction, ``"TB"`` (default) or ``"LR"``.
        title: a label for the whole drawing.

    Edges point the way the forward pass ran (input to output); backward runs against them.  A dashed red
    node marks where a recurrence's state enters without gradient (``h.detach()`` or a constant h0).
    """
    if collapse is not None and (isinstance(collapse, bool) or not isinstance(collapse, int) or collapse < 1):
        raise ValueError(f"collapse must be a positive int or None, got {collapse!r}")
    graph = _Graph(roots)
    key = graph.clusters()
    names = _names(params, graph)
    norms = grad_norms.norms if isinstance(grad_norms, GradientRecorder) else grad_norms
    ident = {node: f"n{i}" for i, node in enumerate(graph.order)}
    shown_as, placeholders = _collapse(key, ident, collapse)

    body: dict[tuple, list[str]] = defaultdict(list)  # node statements per cluster
    heat = _HeatScale(norms)
    roots_ = set(graph.roots)
    for node in reversed(graph.order):  # producers first, as the forward pass ran
        if shown_as[node] == ident[node]:
            body[key[node]].append(ident[node] + " " + _node_attrs(node, node in roots_, names, heat) + ";")
    for chain, (pid, label) in placeholders.items():
        body[chain].append(f"{pid} {_attrs(label=label, shape='box', style='dashed,rounded')};")

    edges = []
    for node in reversed(graph.order):
        for edge in node.next_functions:
            if edge is not None:
                edges.append((shown_as[edge[0]], shown_as[node]))
    lines = [f"  {a} -> {b};" for a, b in dict.fromkeys(edges) if a != b]
    lines += _step_order(graph, key, shown_as, ident)
    # One boundary node per chain, with an edge to every op that reads the state coming in without gradient.
    cut = _attrs(label="detached / initial state\nno gradient flows back", shape="box", style="dashed",
                 color="red", fontcolor="red")
    for node, slot in _boundaries(graph, key):
        layer, direction = key[node][:2]
        cid = f"cut_l{layer}_d{direction}"
        if f"{cid} {cut};" not in body[(layer, direction)]:
            body[(layer, direction)].append(f"{cid} {cut};")
        lines.append(f"  {cid} -> {shown_as[node]} " + _attrs(style="dashed", color="red",
                                                              label=f"input {slot}") + ";")

    # newrank: rank the whole graph at once, so that _step_order's edges between clusters are kept
    header = ["digraph minigrad {",
              "  graph " + _attrs(rankdir=rankdir, newrank="true", label=title, labelloc="t" if title else None,
                                  fontname="Helvetica") + ";",
              "  node " + _attrs(fontname="Helvetica", fontsize=10) + ";",
              "  edge " + _attrs(fontname="Helvetica", fontsize=8) + ";"]
    if heat.active:
        legend = f"node colour: |dL/d output|, log scale\n{heat.low:.2g} (pale) .. {heat.high:.2g} (dark red)"
        header.append("  legend " + _attrs(label=legend, shape="note") + ";")
    return "\n".join(header + _cluster_lines(body) + lines + ["}"]) + "\n"


def _step_order(graph: _Graph, key: dict, shown_as: dict, ident: dict) -> list[str]:
    """Invisible edges that lay every step out after the one before it, and each step's outputs below it.

    Graphviz keeps a cluster's nodes together but does not order sibling clusters, and an input projection
    (which does not wait for the previous step) floats up beside earlier steps.  An edge from the node that
    passes the state on to every op of the next step that reads nothing else in its step puts the whole
    step a rank below: time runs down the drawing ("TB") or across it ("LR").  Likewise each "out" cluster
    hangs below its step's first marked node.
    """
    members = defaultdict(list)  # cluster -> its nodes, producers first
    for node in reversed(graph.order):
        members[key[node]].append(node)

    def sources(cluster):
        # the drawn ops of a cluster that read no other op of it
        return [ident[n] for n in members[cluster] if shown_as[n] == ident[n] and not any(
            e is not None and key[e[0]] == cluster for e in n.next_functions)]

    pairs = []
    for cluster, nodes in members.items():
        if len(cluster) == 4:
            first = next((n for n in members.get(cluster[1:], ()) if n.tag is not None), None)
            if first is not None:
                pairs += [(shown_as[first], s) for s in sources(cluster)]
        elif len(cluster) == 3:
            for node in nodes:
                for edge in node.next_functions:
                    a = None if edge is None else key[edge[0]]
                    if a is not None and len(a) == 3 and a[:2] == cluster[:2] and a != cluster:
                        pairs += [(shown_as[edge[0]], s) for s in sources(cluster)]
    return [f"  {a} -> {b} [style=invis];" for a, b in dict.fromkeys(pairs) if a != b]


class _HeatScale:
    """Maps gradient norms to ``_HEAT`` colours on a log scale spanning the norms present."""

    def __init__(self, norms: Mapping | None) -> None:
        self.norms = norms
        logs = [math.log10(v) for v in (norms or {}).values() if v > 0 and math.isfinite(v)]
        self.active = bool(logs)
        self.lo, self.hi = (min(logs), max(logs)) if logs else (0.0, 0.0)
        self.low, self.high = 10 ** self.lo, 10 ** self.hi

    def colour(self, norm: float) -> str:
        if self.hi <= self.lo:
            return _HEAT[len(_HEAT) // 2]
        x = (math.log10(norm) - self.lo) / (self.hi - self.lo)
        return _HEAT[min(len(_HEAT) - 1, int(x * len(_HEAT)))]


def _node_attrs(node: Any, is_root: bool, names: dict[int, str], heat: _HeatScale) -> str:
    """DOT attributes of one node: label (op or leaf name, shape, gradient norm) and colours."""
    if node.name() == "AccumulateGrad":
        var = node.variable  # None once nothing else holds the leaf tensor
        name = "leaf (freed)" if var is None else names.get(id(var), "leaf")
        label = f"{name}\n{_fmt_shape(node.shape)}"
        fill = _PARAM_FILL if var is not None and (id(var) in names or _is_parameter(var)) else _LEAF_FILL
        shape = "ellipse"
    else:
        label = f"{node.name()}\n{_shape_text(node)}"
        fill = _ROOT_FILL if is_root else "white"
        shape = "box"
    fontcolor = None
    if heat.norms is not None:
        norm = heat.norms.get(node)
        if norm is None:
            label += "\nno gradient"
            fill, fontcolor = "#f0f0f0", "#777777"
        else:
            label += f"\n|grad| {norm:.3g}"
            if shape == "box" and norm > 0 and math.isfinite(norm):
                fill = heat.colour(norm)
                fontcolor = "white" if fill in _HEAT[6:] else None
    return _attrs(label=label, shape=shape, style="filled,bold" if is_root else "filled", fillcolor=fill,
                  fontcolor=fontcolor)


def _collapse(key: dict, ident: dict, keep: int | None) -> tuple[dict, dict]:
    """(node -> DOT id it is drawn as, chain -> (placeholder id, label)) for ``to_dot(collapse=keep)``.

    A hidden step's outputs (its "out" cluster) go into the placeholder with the step.
    """
    shown_as = dict(ident)
    placeholders = {}
    if keep is None:
        return shown_as, placeholders
    steps = defaultdict(set)
    for k in key.values():
        if len(k) == 3:
            steps[k[:2]].add(k[2])
    for chain, ts in steps.items():
        hidden = sorted(ts)[keep:-keep]
        if not hidden:
            continue
        pid = f"more_l{chain[0]}_d{chain[1]}"
        label = (f"... {len(hidden)} more steps (t = {hidden[0]} .. {hidden[-1]})\n"
                 "the same ops on the same weights")
        placeholders[chain] = (pid, label)
        hidden = {chain + (t,) for t in hidden}
        for node, k in key.items():
            if k in hidden or (len(k) == 4 and k[1:] in hidden):
                shown_as[node] = pid
    return shown_as, placeholders


def _is_parameter(t: Tensor) -> bool:
    from minigrad.nn.module import Parameter
    return isinstance(t, Parameter)


def _cluster_lines(body: dict[tuple, list[str]]) -> list[str]:
    """Nested ``subgraph cluster_*`` blocks: layer, then direction (when a layer has two), then step."""
    directions = defaultdict(set)
    outputs = []
    for k in body:
        if k and k[0] == "out":
            outputs.append(k[1:])
        elif len(k) >= 2:
            directions[k[0]].add(k[1])
    several = len({k[:2] for k in outputs}) > 1
    lines = ["  " + s for s in body.get((), [])]
    for layer in sorted(directions):
        lines.append(f"  subgraph cluster_layer{layer} {{")
        lines.append(f"    label={_quote(f'layer {layer}')}; style=rounded; color=grey60;")
        lines += ["    " + s for s in body.get((layer,), [])]
        two = len(directions[layer]) > 1
        for d in sorted(directions[layer]):
            indent = "      " if two else "    "
            if two:
                lines.append(f"    subgraph cluster_layer{layer}_dir{d} {{")
                direction = _quote("reverse" if d else "forward")
                lines.append(f"      label={direction}; style=rounded; color=grey75;")
            lines += [indent + s for s in body.get((layer, d), [])]
            steps = sorted(k[2] for k in body if len(k) == 3 and k[:2] == (layer, d))
            for t in steps:
                lines.append(f"{indent}subgraph cluster_step_l{layer}_d{d}_t{t} {{")
                step = _quote(f"t = {t}")
                lines.append(f"{indent}  label={step}; style=filled; fillcolor=grey96; color=grey80;")
                lines += [indent + "  " + s for s in body[(layer, d, t)]]
                lines.append(f"{indent}}}")
            if two:
                lines.append("    }")
        lines.append("  }")
    for layer, d, t in sorted(outputs):
        lines.append(f"  subgraph cluster_out_l{layer}_d{d}_t{t} {{")
        where = f" (layer {layer} {'reverse' if d else 'forward'})" if several else ""
        lines.append(f"    label={_quote(f'output of t = {t}{where}')}; style=dashed; color=grey70;")
        lines += ["    " + s for s in body[("out", layer, d, t)]]
        lines.append("  }")
    return lines


def draw_graph(roots: Roots, path: str | Path, **options: Any) -> Path:
    """Write the graph behind ``roots`` to ``path`` and return the path of the file written.

    ``.dot``/``.gv`` writes DOT text; ``.svg``, ``.png`` or ``.pdf`` also writes the DOT next to it
    (same name, ``.dot``) and renders it with Graphviz's ``dot``.  Without Graphviz the DOT file is still
    written, a warning says what to install, and its path is returned.  ``options`` are those of ``to_dot``.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("dot", "gv", "svg", "png", "pdf"):
        raise ValueError(f"draw_graph: unsupported file type {path.suffix!r}; use .dot, .svg, .png or .pdf")
    text = to_dot(roots, **options)
    dot_path = path if fmt in ("dot", "gv") else path.with_suffix(".dot")
    dot_path.write_text(text, encoding="utf-8")
    if dot_path == path:
        return path
    exe = shutil.which("dot")
    if exe is None:
        warnings.warn(f"{_INSTALL_DOT} to render {path.name}; wrote the DOT text to {dot_path}", stacklevel=2)
        return dot_path
    done = subprocess.run([exe, f"-T{fmt}", str(dot_path), "-o", str(path)], capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed to render {dot_path}: {done.stderr.strip()}")
    return path


def summary(roots: Roots, file: TextIO | None = None) -> str:
    """Print (to ``file``, default stdout) and return a text summary of the graph behind ``roots``: nodes by
    op type, depth, memory saved for backward, leaves, and the marked time steps."""
    graph = _Graph(roots)
    counts = Counter(node.name() for node in graph.order)
    saved = defaultdict(int)
    owners = {}
    n_arrays = 0
    freed = 0
    for node in graph.order:
        arrays = node.saved_arrays
        if arrays is None:
            freed += 1
            continue
        for a in arrays:
            saved[node.name()] += a.nbytes
            n_arrays += 1
            base = a
            while isinstance(base.base, np.ndarray):
                base = base.base
            owners[id(base)] = base.nbytes
    leaves = [n for n in graph.order if n.name() == "AccumulateGrad"]
    head = (f"graph: {len(graph.order)} nodes ({len(graph.order) - len(leaves)} ops, {len(leaves)} leaves "
            f"that require grad), depth {graph.depth()}")
    lines = [head]
    width = max(len(name) for name in counts)
    lines.append(f"  {'op':<{width}}  {'count':>6}  {'saved for backward':>18}")
    for name, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        mem = _fmt_bytes(saved[name]) if saved[name] else "-"
        lines.append(f"  {name:<{width}}  {c:>6}  {mem:>18}")
    total = sum(saved.values())
    if freed == len(graph.order) and total == 0:
        lines.append("saved for backward: freed (backward() has run on this graph)")
    else:
        lines.append(f"saved for backward: {_fmt_bytes(total)} in {n_arrays} arrays "
                     f"({_fmt_bytes(sum(owners.values()))} of distinct storage, views counted once)")
    n_values = sum(int(np.prod(n.shape)) for n in leaves)
    lines.append(f"leaves: {len(leaves)} tensors, {n_values:,} values")
    chains = defaultdict(set)
    for node in graph.order:
        tag = node.tag
        if tag is not None:
            chains[tag[:2]].add(tag[2])
    for (layer, d), steps in sorted(chains.items()):
        lines.append(f"marked steps: layer {layer} {'reverse' if d else 'forward'}: {len(steps)} "
                     f"(t = {min(steps)} .. {max(steps)})")
    text = "\n".join(lines)
    print(text, file=file or sys.stdout)
    return text


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
