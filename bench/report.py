#!/usr/bin/env python
"""The ratio table of issue 19: minigrad against numpy, torch and JAX, measured in one run, interleaved.

    python bench/report.py [--quick | --smoke] [--markdown] [--json PATH] [--only matmul,tanh,rnn,...]

Every case of ``bench/cases.py`` is built, its result checked once, then timed in rounds A B C, C B A, ...
(each round one block of calls per implementation, each block after an idle gap), and the median round is
what the tables show (the best is in the JSON): the machine is shared and noisy, so only ratios measured
side by side mean anything.  ``speedup = peer's time / minigrad's time`` (above 1: minigrad is faster).
Targets are fractions of the FMA peak measured on the running machine and ratios against the peers at the
same thread count, so they mean the same on any machine.  When the environment forces numpy's OpenBLAS
onto a kernel (``OPENBLAS_CORETYPE``), a child process also times numpy with the CPU's own choice.

``--markdown`` prints the README's Performance table.  ``main(argv)`` is importable (``minigrad bench``
runs this script); it returns the exit status: 0, or 1 if a result check failed.  Targets that are missed
are reported, not failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(ROOT))

from bench import cases, harness, jax_peer  # first: it fixes which OpenMP runtime this process gets

# matmul: one core's share of the product as a fraction of the core's measured FMA peak, where the product
# is big enough to reach it (n >= 256); 2 threads share the caches and memory, hence the lower bar
PEAK_FRACTION = {1: 0.90, 2: 0.85}
NOISE = 0.97            # "never slower" allows 3 % of measurement noise
# the recurrent step's target vs torch by kind and hidden size (issue 19: nn.RNN; issue 16: LSTM, GRU)
RECURRENT_VS_TORCH = {"rnn": {128: 2.5, 256: 1.8}, "lstm": {128: 1.5, 256: 1.2}, "gru": {128: 1.5, 256: 1.2}}
CORE_OPS_LSTM_VS_TORCH = 1.5   # the core-ops LSTM's step time at most this many times torch's nn.LSTM's
RNN_VS_JAX = 2.0
RNN_BOUND_GOAL = ("rnn", "f32", "B32T64I64H128L1", 0.65)  # the step whose fraction of its bound has a goal
TBPTT_TIME_FLAT = 1.15  # late/early window time within 15 % counts as independent of the position
TBPTT_PEAK_FLAT = 1.10
TBPTT_RETAINED_SLACK = 65536

# rounds per case, seconds per timed block, seconds after which a case stops adding rounds (once it has 3),
# idle seconds before each block
SETTINGS = {"full": {"rounds": 9, "block": 0.02, "budget": 12.0, "gap": 0.2},
            "quick": {"rounds": 5, "block": 0.004, "budget": 2.0, "gap": 0.2},
            "smoke": {"rounds": 1, "block": 0.001, "budget": 0.0, "gap": 0.0}}


# ---- measuring ---------------------------------------------------------------------------------------

@dataclass
class Result:
    case: cases.Case
    times: dict[str, dict[str, float]] = field(default_factory=dict)  # impl -> best/median/rounds/loops
    threads: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    round_trip_ns: float | None = None  # the CPUs' distance just before the case (harness.core_round_trip)

    def time(self, impl: str) -> float | None:
        """Median seconds per call (per graph node, per window, ...)."""
        t = self.times.get(impl)
        return t["median"] / self.case.per if t else None

    def best(self, impl: str) -> float | None:
        t = self.times.get(impl)
        return t["best"] / self.case.per if t else None


def measure(case: cases.Case, rounds: int, block: float, impls: list[str] | None = None,
            budget: float | None = None, gap: float = 0.0) -> Result:
    """Build every implementation, check each one's first result, then time them interleaved.  A 2-thread
    matmul case also times minigrad with one thread in the same rounds (the thread-scaling ratio)."""
    res = Result(case)
    with harness.threads(case.threads):
        res.threads = harness.thread_counts()
        fns = {}
        for name, make in case.impls.items():
            if impls is not None and name not in impls:
                continue
            try:
                fn = make()
                case.check(name, fn())
            except AssertionError as e:
                res.error = f"{name}: wrong result: {e}"
                return res
            except Exception as e:  # noqa: BLE001 - e.g. a layer whose API differs from torch's: say so
                res.error = f"{name}: {type(e).__name__}: {e}"
                return res
            fns[name] = fn
        around = {}
        if case.family == "matmul" and case.threads == 2 and "minigrad" in fns:
            fns["minigrad 1 thread"] = fns["minigrad"]
            around["minigrad 1 thread"] = lambda: harness.minigrad_threads(1)
        if fns:
            res.times = harness.interleaved(fns, case.fixed_rounds or rounds, block,
                                            fixed_loops=1 if case.fixed_rounds else None, around=around,
                                            budget=None if case.fixed_rounds else budget, gap=gap,
                                            min_loops=case.min_loops)
        if "jax" in fns:  # XLA's pool exists once JAX has run
            res.threads["jax"] = jax_peer.xla_threads()
    return res


def run_cases(selected: list[cases.Case], args: argparse.Namespace, impls: list[str] | None = None,
              label: str = "") -> list[Result]:
    results = []
    for i, case in enumerate(selected, 1):
        t0 = time.perf_counter()
        trip = harness.core_round_trip() if (case.threads or 1) > 1 and args.mode != "smoke" else None
        results.append(measure(case, args.rounds, args.block, impls, args.budget, args.gap))
        results[-1].round_trip_ns = trip
        status = results[-1].error or case.meta.get("unavailable") or f"{time.perf_counter() - t0:.1f} s"
        print(f"{label}[{i}/{len(selected)}] {case.title}: {status}", file=sys.stderr, flush=True)
    return results


def numpy_own_kernel(args: argparse.Namespace) -> dict[str, Any]:
    """When the environment forces OpenBLAS's kernel (OPENBLAS_CORETYPE), minigrad vs numpy on the CPU's
    own choice, in a child process without the variable: no figure may rest on a peer forced onto slower
    kernels.  Empty when nothing is forced."""
    if "OPENBLAS_CORETYPE" not in os.environ:
        return {}
    command = [sys.executable, str(Path(__file__).resolve()), "--openblas-child",
               "--rounds", str(args.rounds), "--block", str(args.block), "--budget", str(args.budget),
               "--gap", str(args.gap), "--cpus", str(args.cpus), f"--{args.mode}"]
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    proc = subprocess.run(command, check=False, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        return {"error": f"child exited with status {proc.returncode}"}
    return json.loads(proc.stdout)


def child_main(args: argparse.Namespace) -> int:
    results = run_cases(cases.matmul_cases(args.mode), args, ["minigrad", "numpy"],
                        label="numpy-own-kernel child ")
    json.dump({"numpy_blas": harness.numpy_blas(),
               "results": {r.case.id: {k: v["median"] for k, v in r.times.items()} for r in results},
               "errors": {r.case.id: r.error for r in results if r.error}}, sys.stdout)
    return 0


def limit_cpus(n: int) -> list[int]:
    """Let this process run on at most ``n`` CPUs, one per physical core where the topology says which
    are siblings, before JAX loads: XLA sizes its thread pool from the affinity (its XLA_FLAGS thread
    options do not), so every library gets the same number of threads.  Returns the CPUs allowed."""
    allowed = sorted(os.sched_getaffinity(0))
    if n <= 0 or len(allowed) <= n:
        return allowed

    def first_sibling(cpu: int) -> int:
        try:
            text = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text()
            return int(text.replace("-", ",").split(",")[0])
        except (OSError, ValueError):
            return cpu
    cores = [c for c in allowed if first_sibling(c) == c] or allowed
    chosen = (cores + [c for c in allowed if c not in cores])[:n]
    os.sched_setaffinity(0, chosen)
    return chosen


# ---- targets and tables ------------------------------------------------------------------------------

def fmt_time(s: float | None) -> str:
    if s is None:
        return "–"
    for scale, unit in ((1e-6, "ns"), (1e-3, "µs"), (1.0, "ms")):
        if s < scale:
            v = s / scale * 1e3
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{s:.3g} s"


def fmt_x(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


class Targets:
    """The issue's targets for one row: ``need(label, value, minimum)``; ``verdict`` is PASS or MISS."""

    def __init__(self) -> None:
        self.items: list[tuple[str, float | None, float, bool]] = []

    def need(self, label: str, value: float | None, minimum: float, at_most: bool = False) -> None:
        ok = value is not None and (value <= minimum if at_most else value >= minimum)
        self.items.append((label, value, minimum, ok))

    @property
    def text(self) -> str:
        return "; ".join(label for label, *_ in self.items) or "–"

    @property
    def verdict(self) -> str:
        if not self.items:
            return "–"
        missed = [label for label, _, _, ok in self.items if not ok]
        return "PASS" if not missed else "MISS: " + "; ".join(missed)

    def json(self) -> list[dict[str, Any]]:
        return [{"target": label, "value": v, "threshold": m, "pass": ok} for label, v, m, ok in self.items]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def fmt_median_best(r: Result, impl: str) -> str:
    t = r.time(impl)
    return "–" if t is None else f"{fmt_time(t)} ({fmt_time(r.best(impl))})"


@dataclass
class Summary:
    """One row of the README's table (``--markdown``): the case, its threads, minigrad's median time, its
    ratio to each peer, its fraction of the peak or bound, and the verdict."""
    case: str
    threads: str
    minigrad: str
    vs: dict[str, float | None]
    peak: str
    verdict: str


def matmul_table(results: list[Result], own: dict[str, Any], record: list, summary: list) -> Table:
    peak = harness.fma_peak()
    own_res = own.get("results", {})
    own_label = f"vs numpy {own['numpy_blas'].get('architecture')} (own)" if "numpy_blas" in own else ""
    t = Table("matmul", ["case", "threads", "minigrad (best)", "numpy", "torch", "vs numpy", "vs torch"]
              + ([own_label] if own_label else []) + ["vs 1 thread", "GFLOP/s", "% of core peak", "target",
                                                      "result"])
    for r in results:
        c, m = r.case, r.case.meta
        name = f"{m['dtype']} {m['m']}×{m['k']} @ {m['k']}×{m['n']}" + (" (Wᵀ view)" if m["transposed"] else "")
        if r.error:
            t.rows.append([name, str(c.threads), "CHECK FAILED", *["–"] * (len(t.columns) - 4), r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, np_t, th_t = r.time("minigrad"), r.time("numpy"), r.time("torch")
        gflops = c.work / mg_t / 1e9
        per_core = gflops / c.threads
        fraction = per_core / peak[m["dtype"]] if peak else None
        child = own_res.get(c.id, {})
        vs_own = ratio(child.get("numpy"), child.get("minigrad"))
        vs_1t = ratio(r.time("minigrad 1 thread"), mg_t)
        tg = Targets()
        # numpy limited to the row's thread count (harness.threads), so like is compared with like
        tg.need("≥1.0× numpy", ratio(np_t, mg_t), 1.0)
        if own_label:
            tg.need("≥1.0× numpy (own choice)", vs_own, 1.0)
        if m["square"] and m["n"] >= 256 and fraction is not None:
            tg.need(f"≥{PEAK_FRACTION[c.threads]:.0%} of peak per core", fraction, PEAK_FRACTION[c.threads])
        if c.threads == 2:
            if m["square"] and m["n"] >= 512:
                tg.need("2 threads ≥1.7× 1", vs_1t, 1.7)
            else:
                tg.need("2 threads ≥ 1", vs_1t, NOISE)
        threads = f"{r.threads['minigrad']}/{r.threads['numpy']}/{r.threads['torch']}"
        t.rows.append([name, threads, fmt_median_best(r, "minigrad"), fmt_time(np_t), fmt_time(th_t),
                       fmt_x(ratio(np_t, mg_t)), fmt_x(ratio(th_t, mg_t))]
                      + ([fmt_x(vs_own)] if own_label else [])
                      + [fmt_x(vs_1t), f"{gflops:.1f}", fmt_pct(fraction), tg.text, tg.verdict])
        record.append({"case": c.id, "gflops": gflops, "gflops_per_core": per_core, "peak_fraction": fraction,
                       "vs_numpy_own_kernel": vs_own, "vs_1_thread": vs_1t, "targets": tg.json()})
        step_product = (m["dtype"], m["m"], m["transposed"], c.threads) == ("f32", 32, True, 1)
        if m["square"] and m["n"] == 1024 or step_product:
            summary.append(Summary(f"matmul {name}", str(c.threads), fmt_time(mg_t),
                                   {"numpy": ratio(np_t, mg_t), "torch": ratio(th_t, mg_t)},
                                   fmt_pct(fraction) + " of peak" if fraction else "–", tg.verdict))
    how = (f"one core's FMA peak measured by bench/fma_peak.c: {peak['f32']:.0f} f32 / {peak['f64']:.0f} f64 "
           "GFLOP/s" if peak else "no peak measured (no C compiler or not x86-64): no peak targets")
    t.notes.append(f"% of core peak = GFLOP/s ÷ threads ÷ {how}. threads = minigrad/numpy/torch: numpy's "
                   "BLAS and torch are limited to the row's count (threadpoolctl, torch.set_num_threads).")
    if own_label:
        t.notes.append(f"{own_label}: minigrad vs numpy in a child process without OPENBLAS_CORETYPE (its "
                       f"numpy ran {own['numpy_blas'].get('internal_api')} "
                       f"{own['numpy_blas'].get('architecture')}).")
    elif own.get("error"):
        t.notes.append(f"numpy with the CPU's own OpenBLAS kernel not measured: {own['error']}")
    t.notes.append("vs 1 thread: minigrad's 1-thread time / its 2-thread time, timed in the same rounds; "
                   f"'never slower' allows {1 - NOISE:.0%} noise.")
    return t


def tanh_table(results: list[Result], record: list, summary: list) -> Table:
    t = Table("tanh", ["case", "threads", "minigrad (best)", "numpy", "torch", "vs numpy", "vs torch",
                       "Gelem/s minigrad", "numpy", "torch", "target", "result"])
    for r in results:
        c, m = r.case, r.case.meta
        name = f"{m['dtype']} {m['label']}"
        if r.error:
            t.rows.append([name, str(c.threads), "CHECK FAILED", *["–"] * 8, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, np_t, th_t = r.time("minigrad"), r.time("numpy"), r.time("torch")
        tg = Targets()
        need_np = 1.6 if c.threads == 2 and m["size"] >= 1 << 18 else 1.0
        tg.need(f"≥{need_np}× numpy", ratio(np_t, mg_t), need_np)
        tg.need("≥5× torch", ratio(th_t, mg_t), 5.0)
        rate = [f"{c.work / x / 1e9:.2f}" for x in (mg_t, np_t, th_t)]
        t.rows.append([name, str(c.threads), fmt_median_best(r, "minigrad"), fmt_time(np_t), fmt_time(th_t),
                       fmt_x(ratio(np_t, mg_t)), fmt_x(ratio(th_t, mg_t)), *rate, tg.text, tg.verdict])
        record.append({"case": c.id, "gelem_s": c.work / mg_t / 1e9, "targets": tg.json()})
        if m["dtype"] == "f32" and c.threads == 2 and m["size"] == max(x.case.meta["size"] for x in results):
            summary.append(Summary(f"tanh f32, {m['label']} elements", "2", fmt_time(mg_t),
                                   {"numpy": ratio(np_t, mg_t), "torch": ratio(th_t, mg_t)}, "–", tg.verdict))
    t.notes.append("np.tanh is single-threaded; minigrad and torch use the row's thread count. Each result is "
                   "checked once against a long-double tanh (minigrad ≤ 2 ulp).")
    return t


def engine_table(results: list[Result], record: list, summary: list) -> Table:
    t = Table("engine overhead", ["case", "minigrad (best)", "torch", "minigrad ÷ torch time", "vs torch",
                                  "target", "result"])
    for r in results:
        c = r.case
        name = "add (1, 4) + (1, 4), one requires grad" if c.meta["what"] == "add" else \
            f"chain of {c.per} nodes (mul, tanh), fwd+bwd per node"
        if r.error:
            t.rows.append([name, "CHECK FAILED", *["–"] * 4, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, th_t = r.time("minigrad"), r.time("torch")
        tg = Targets()
        tg.need("≤0.3× torch's time", ratio(mg_t, th_t), 0.3, at_most=True)
        t.rows.append([name, fmt_median_best(r, "minigrad"), fmt_time(th_t), f"{ratio(mg_t, th_t):.2f}",
                       fmt_x(ratio(th_t, mg_t)), tg.text, tg.verdict])
        record.append({"case": c.id, "targets": tg.json()})
        if c.meta["what"] == "chain":
            summary.append(Summary(f"autograd {name}", "1", fmt_time(mg_t), {"torch": ratio(th_t, mg_t)}, "–",
                                   tg.verdict))
    return t


def _loss_label(loss: str) -> str:
    return "" if loss == "wsum" else f", loss {cases.LOSSES[loss]}"


def rnn_table(results: list[Result], record: list, summary: list) -> Table:
    peak = harness.fma_peak()
    first_key = results[0].case.meta["key"] if results else None
    jax_missing = next((r.case.meta["jax_unavailable"] for r in results if r.case.meta["jax_unavailable"]),
                       None)
    t = Table("recurrent training step", ["case", "threads", "minigrad (best)", "torch", "torch cell loop",
                                          "JAX jit", "vs torch", "vs cell loop", "vs JAX",
                                          "% of FLOP bound", "target", "result"])
    vs_torch_by_loss: dict[tuple[str, str], dict[str, tuple[float | None, bool]]] = {}
    for r in results:
        c, m = r.case, r.case.meta
        kind_name = c.title.split(" training")[0]
        name = f"{kind_name} {m['dtype']} {m['config']}{_loss_label(m['loss'])}"
        # the README shows every nn.RNN row, and LSTM / GRU at the first size only, under (out * w).sum()
        headline = m["loss"] == "wsum" and (m["kind"] == "rnn" or m["key"] == first_key)
        if m["unavailable"]:
            t.rows.append([name, "", m["unavailable"], *["–"] * 9])
            if headline:
                summary.append(Summary(name, "", m["unavailable"], {}, "–", "–"))
            continue
        if r.error:
            t.rows.append([name, "", "CHECK FAILED", *["–"] * 8, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, th_t, cell_t, jax_t = (r.time(i) for i in ("minigrad", "torch", "torch-cell", "jax"))
        bound = m["flops"] / (peak[m["dtype"]] * 1e9 * r.threads["minigrad"]) if peak else None
        fraction = ratio(bound, mg_t)
        tg = Targets()
        need, vs_torch = RECURRENT_VS_TORCH[m["kind"]][128 if m["hidden"] <= 128 else 256], ratio(th_t, mg_t)
        tg.need(f"≥{need}× torch", vs_torch, need)
        if cell_t is not None:
            tg.need(f"≥3× {kind_name}Cell loop", ratio(cell_t, mg_t), 3.0)
        if m["kind"] == "rnn":
            if jax_t is not None:
                tg.need(f"≥{RNN_VS_JAX}× JAX", ratio(jax_t, mg_t), RNN_VS_JAX)
            if (m["kind"], m["dtype"], m["key"]) == RNN_BOUND_GOAL[:3] and fraction is not None:
                tg.need(f"≥{RNN_BOUND_GOAL[3]:.0%} of FLOP bound", fraction, RNN_BOUND_GOAL[3])
        else:
            held = vs_torch is not None and vs_torch >= need
            vs_torch_by_loss.setdefault((f"{kind_name} {m['dtype']} {m['config']}", f"≥{need}×"), {})[
                m["loss"]] = (vs_torch, held)
        threads = f"{r.threads['minigrad']}/{r.threads['torch']}" + (
            f"/{r.threads.get('jax', jax_peer.xla_threads())}" if jax_t is not None else "")
        jax_cell = fmt_time(jax_t) if jax_t is not None else "not installed" if m["loss"] == "wsum" else "–"
        t.rows.append([name, threads, fmt_median_best(r, "minigrad"), fmt_time(th_t), fmt_time(cell_t),
                       jax_cell, fmt_x(vs_torch), fmt_x(ratio(cell_t, mg_t)),
                       fmt_x(ratio(jax_t, mg_t)), fmt_pct(fraction), tg.text, tg.verdict])
        record.append({"case": c.id, "flops": m["flops"], "bound_s": bound, "bound_fraction": fraction,
                       "targets": tg.json()})
        if headline:
            summary.append(Summary(name, threads, fmt_time(mg_t),
                                   {"torch": ratio(th_t, mg_t), "jax": ratio(jax_t, mg_t)},
                                   fmt_pct(fraction) + " of bound" if fraction else "–", tg.verdict))
    t.notes.append("One step = zero_grad, forward, loss (out * w).sum() (unless the row names another), "
                   "backward, SGD step, the same initial weights everywhere; the cell loop is torch's "
                   "RNNCell / LSTMCell / GRUCell called per step, layer and direction; JAX's is jax.jit of "
                   "jax.value_and_grad over a lax.scan per layer and direction, with the SGD update. Each "
                   "step's loss, every gradient and the updated weights are checked against float64 torch "
                   "before timing (the peers' too: they compute what minigrad does). threads = "
                   f"minigrad/torch/JAX. Blocks of at least {cases.RNN_MIN_LOOPS} steps.")
    t.notes.append("% of FLOP bound = the time the step's matrix products take at the measured FMA peak of "
                   "the row's cores (cases.step_flops counts them) ÷ minigrad's median step. LSTM and GRU "
                   "(issue 16): ≥1.5× torch at H = 128, ≥1.2× at H = 256, ≥3× the cell loop, under every "
                   "loss; no JAX or FLOP-bound target.")
    for (what, need), by_loss in vs_torch_by_loss.items():
        if len(by_loss) > 1:
            held = [cases.LOSSES[loss] for loss, (_, ok) in by_loss.items() if ok]
            ratios = ", ".join(f"{fmt_x(v)} with {cases.LOSSES[loss]}" for loss, (v, _) in by_loss.items())
            t.notes.append(f"Loss on top, {what}: vs torch {ratios}; {need} torch holds under "
                           + ("every loss" if len(held) == len(by_loss) else
                              ", ".join(held) if held else "no loss") + ".")
    if jax_missing:
        t.notes.append(jax_missing)
    return t


def core_ops_lstm_table(results: list[Result], record: list, summary: list) -> Table:
    """The core-ops LSTM (``cases.core_ops_lstm_case``): its step's time against nn.LSTM's, torch's and
    minigrad's, and against the same code run by torch."""
    t = Table("LSTM written from core ops", ["case", "threads", "minigrad core ops (best)", "torch nn.LSTM",
                                             "minigrad nn.LSTM", "torch core ops", "÷ torch nn.LSTM",
                                             "÷ minigrad nn.LSTM", "vs torch core ops", "target", "result"])
    for r in results:
        c, m = r.case, r.case.meta
        name = f"LSTM from core ops {m['dtype']} {m['config']}"
        if r.error:
            t.rows.append([name, "", "CHECK FAILED", *["–"] * 7, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        user_t, th_t, mg_t, th_user_t = (r.time(i) for i in ("minigrad core ops", "torch", "minigrad",
                                                              "torch core ops"))
        tg = Targets()
        tg.need(f"≤{CORE_OPS_LSTM_VS_TORCH}× torch nn.LSTM's time", ratio(user_t, th_t),
                CORE_OPS_LSTM_VS_TORCH, at_most=True)
        threads = f"{r.threads['minigrad']}/{r.threads['torch']}"
        t.rows.append([name, threads, fmt_median_best(r, "minigrad core ops"), fmt_time(th_t), fmt_time(mg_t),
                       fmt_time(th_user_t), fmt_x(ratio(user_t, th_t)), fmt_x(ratio(user_t, mg_t)),
                       fmt_x(ratio(th_user_t, user_t)), tg.text, tg.verdict])
        record.append({"case": c.id, "vs_torch_lstm_time": ratio(user_t, th_t),
                       "vs_minigrad_lstm_time": ratio(user_t, mg_t), "targets": tg.json()})
        if m["dtype"] == "f32":
            summary.append(Summary(name, threads, fmt_time(user_t), {"torch": ratio(th_t, user_t)}, "–",
                                   tg.verdict))
    t.notes.append("One step of a one-layer LSTM as a user writes it from minigrad's core ops (per step "
                   "x[t] @ W_ih.T + h @ W_hh.T + b, chunk(4, dim=1), sigmoid, tanh, *, +; the outputs "
                   "stacked; loss (out * w).sum(); SGD), with nn.LSTM's weights, checked against float64 "
                   "torch's nn.LSTM. ÷ X = its time ÷ X's time (below 1× it is faster); torch core ops is "
                   "the same code run by torch (vs: its time ÷ minigrad's).")
    return t


def tbptt_table(results: list[Result], memory: dict[str, Any] | None, record: list) -> Table:
    t = Table("truncated BPTT", ["measure", "early", "late", "late ÷ early", "target", "result"])
    for r in results:
        c = r.case
        if r.error:
            t.rows.append([c.title, "CHECK FAILED", "–", "–", "–", r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        early, late = r.time("minigrad early"), r.time("minigrad late")
        tg = Targets()
        tg.need(f"≤{TBPTT_TIME_FLAT}×", ratio(late, early), TBPTT_TIME_FLAT, at_most=True)
        t.rows.append(["time per window (minigrad)", fmt_time(early), fmt_time(late),
                       f"{ratio(late, early):.2f}", tg.text, tg.verdict])
        t.rows.append(["time per window (torch, for scale)", fmt_time(r.time("torch early")), "", "", "", ""])
        t.notes.append(f"{c.title}: early = windows 1, 2, …; late = after {c.meta['late']} windows; the two "
                       f"runs alternate window by window ({c.fixed_rounds} each), median window.")
        record.append({"case": c.id, "targets": tg.json()})
    if memory:
        e, lt = memory["early"], memory["late"]
        tg = Targets()
        tg.need(f"≤{TBPTT_PEAK_FLAT}×", ratio(lt["peak"], e["peak"]), TBPTT_PEAK_FLAT, at_most=True)
        t.rows.append(["peak memory of a window (tracemalloc)", f"{e['peak'] / 1024:.0f} KiB",
                       f"{lt['peak'] / 1024:.0f} KiB", f"{ratio(lt['peak'], e['peak']):.2f}", tg.text, tg.verdict])
        tr = Targets()
        tr.need("no growth", lt["retained"] - e["retained"], TBPTT_RETAINED_SLACK, at_most=True)
        t.rows.append(["memory a window leaves allocated", f"{e['retained'] / 1024:.1f} KiB",
                       f"{lt['retained'] / 1024:.1f} KiB", "", tr.text, tr.verdict])
        t.rows.append(["process RSS after the window", f"{e['rss'] / 2 ** 20:.0f} MiB",
                       f"{lt['rss'] / 2 ** 20:.0f} MiB", "", "", ""])
        t.notes.append(f"memory: windows {e['first_window']}… vs {lt['first_window']}… of a fresh run, "
                       f"median of {memory['windows']}; tracemalloc runs from each window's start to its end "
                       "(numpy's buffers included).")
        record.append({"case": "tbptt-memory", **memory, "targets": tg.json() + tr.json()})
    return t


# ---- rendering ---------------------------------------------------------------------------------------

def render_text(table: Table) -> str:
    cells = [table.columns] + table.rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]

    def line(row: list[str]) -> str:
        return "  ".join(v.ljust(w) if i in (0, len(row) - 2, len(row) - 1) else v.rjust(w)
                         for i, (v, w) in enumerate(zip(row, widths))).rstrip()
    out = [table.title.upper(), line(table.columns), line(["-" * w for w in widths])]
    out += [line(r) for r in table.rows]
    out += ["  " + n for n in table.notes]
    return "\n".join(out)


def render_readme(machine: dict[str, Any], summary: list[Summary], how: str, total: str, mode: str) -> str:
    """The README's Performance table: the machine, then one row per headline case."""
    peak, blas = machine.get("fma_peak_per_core"), machine["numpy_blas"]
    cfg, jx = machine["minigrad"], machine.get("jax") or {}
    trips = harness.round_trips_text(machine.get("core_round_trip_ns") or {})
    forced = blas["OPENBLAS_CORETYPE"]
    command = "python bench/report.py" + ("" if mode == "full" else f" --{mode}") + " --markdown"
    lines = [f"Measured with `{command}` on {machine['cpu']}, "
             f"{machine['usable_cpus']} CPUs; one core's FMA peak "
             + (f"{peak['f32']:.0f} GFLOP/s f32, {peak['f64']:.0f} f64 ({peak['isa']}, bench/fma_peak.c)"
                if peak else "not measured")
             + (f"; a cache line's round trip between its CPUs {trips} at the start / end (bench/core_latency.c)"
                if trips else ""),
             f"numpy {machine['numpy']} on {blas.get('internal_api')} {blas.get('version')} with its "
             f"{blas.get('architecture')} kernels (OPENBLAS_CORETYPE "
             + ("unset: the CPU's own choice" if forced == "(unset)" else f"forced to {forced}")
             + f"); torch {machine['torch']}; "
             + (f"JAX {jx['version']}; " if jx.get("version") else "no JAX; ")
             + f"minigrad's {cfg['isa']} kernels on its {cfg['parallel']} threading backend. {how}", ""]
    lines += ["| case | threads | minigrad | vs numpy | vs torch | vs JAX | of peak | target |",
              "|:--|--:|--:|--:|--:|--:|--:|:--|"]
    for row in summary:
        cells = [row.case, row.threads, row.minigrad] + [fmt_x(row.vs.get(k))
                                                         for k in ("numpy", "torch", "jax")]
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in cells + [row.peak, row.verdict]) + " |")
    return "\n".join(lines + ["", total])


def summarize(record: list) -> tuple[int, int, int]:
    targets = [t for r in record for t in r.get("targets", [])]
    errors = sum(1 for r in record if r.get("error"))
    return sum(t["pass"] for t in targets), len(targets), errors


# ---- main --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/report.py", description=__doc__.split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer sizes and rounds (a few minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, one block each, no idle gaps: "
                      "seconds; checks that the report runs, its figures mean nothing")
    size.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--markdown", action="store_true", help="print the README's Performance table")
    p.add_argument("--json", metavar="PATH", help="also write every measurement and verdict as JSON")
    p.add_argument("--only", metavar="FAMILIES", help=f"comma-separated subset of {','.join(cases.FAMILIES)}")
    p.add_argument("--rounds", type=int, help="interleaved rounds per case (default 9, quick 5, smoke 1)")
    p.add_argument("--block", type=float, help="seconds of calls per timed block (default 0.02, quick 0.004)")
    p.add_argument("--budget", type=float, help="seconds after which a case adds no more rounds once it "
                   "has 3 (default 12, quick 2)")
    p.add_argument("--gap", type=float, help="idle seconds before each timed block (default 0.2, smoke 0)")
    p.add_argument("--cpus", type=int, default=2, help="run on at most this many CPUs, so that every "
                   "library, JAX included, gets the same threads (default 2; 0: all)")
    p.add_argument("--render", metavar="PATH", help="measure nothing: print the tables of a run saved "
                   "with --json (with --markdown, the README's table)")
    p.add_argument("--openblas-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = SETTINGS[args.mode]
    for key in ("rounds", "block", "budget", "gap"):
        if getattr(args, key) is None:
            setattr(args, key, mode[key])
    args.families = args.only.split(",") if args.only else list(cases.FAMILIES)
    unknown = set(args.families) - set(cases.FAMILIES)
    if unknown:
        p.error(f"unknown case families {sorted(unknown)}; choose from {list(cases.FAMILIES)}")
    return args


def saved_run(args: argparse.Namespace) -> tuple:
    """A run saved with --json, as main() measures one: the tables print again without measuring."""
    data = json.loads(Path(args.render).read_text())
    settings = data["settings"]
    for key in ("mode", "rounds", "families"):
        setattr(args, key, settings[key])
    args.block = settings["block_s"]
    args.budget, args.gap = settings["budget_s"], settings["gap_s"]
    saved = {c["id"]: c for c in data["cases"]}
    results = {}
    for fam in args.families:
        results[fam] = []
        for case in cases.FAMILIES[fam](args.mode):
            if case.id in saved:
                c = saved[case.id]
                results[fam].append(Result(case, c["times"], c["threads"], c["error"], c.get("round_trip_ns")))
    machine = data["machine"]
    harness.set_fma_peak(machine.get("fma_peak_per_core"))
    return (results, machine, data["numpy_own_kernel"], data["tbptt_memory"], data["summary"]["seconds"],
            data["summary"]["load_average_at_end"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        results, machine, own, memory, elapsed, load = saved_run(args)
        return present(args, results, machine, own, memory, elapsed, load)
    limit_cpus(args.cpus)
    if args.openblas_child:
        return child_main(args)
    started = time.perf_counter()
    harness.fma_peak()
    speeds_at_start, trip_at_start = harness.core_speeds(), harness.core_round_trip()
    # the child first: it imports minigrad afresh, and in a checkout that others are editing the build can
    # go stale (and the import fail) while the rest runs
    own = numpy_own_kernel(args) if "matmul" in args.families and args.mode != "smoke" else {}
    results = {fam: run_cases(cases.FAMILIES[fam](args.mode), args) for fam in args.families}
    if args.mode != "smoke":  # the peak once more: on a shared machine a run at a busy moment reads low
        harness.fma_peak(again=True)
    machine = harness.machine()  # after the cases: JAX's threads exist once it has run
    machine["core_speeds"] = {"start": speeds_at_start, "end": harness.core_speeds()}
    machine["core_round_trip_ns"] = {"start": trip_at_start, "end": harness.core_round_trip()}
    memory = None
    if "tbptt" in results:
        late = results["tbptt"][0].case.meta["late"]
        memory = cases.tbptt_memory(late=late, windows=2 if args.mode == "smoke" else 5)
    return present(args, results, machine, own, memory, time.perf_counter() - started, harness.load_average())


def distance_note(results: list[Result], nearest: float | None) -> str | None:
    """The note naming the rows of ``results`` measured while the CPUs were far apart: a round trip at least
    harness.FAR_APART times the run's shortest (``nearest``).  On a VM whose two vCPUs moved onto separate L3
    caches every hand-off and every line one thread writes and the other reads costs several times more (a
    2-vCPU Zen 4 guest: the RNN f32 one-layer step took 3.1-3.6 ms on 2 threads instead of 2.15-2.4, on one
    thread 3.4-3.65).  None when nothing was measured."""
    trips = [r.round_trip_ns for r in results if r.round_trip_ns]
    if not trips or not nearest:
        return None
    far = [r for r in results if r.round_trip_ns and r.round_trip_ns >= harness.FAR_APART * nearest]
    span = f"{min(trips):.0f}-{max(trips):.0f} ns" if len(trips) > 1 else f"{trips[0]:.0f} ns"
    text = (f"The CPUs' distance before each 2-thread row (one cache line's round trip, bench/core_latency.c): "
            f"{span}.")
    if far:
        text += (f" Measured while they were far apart (at least {harness.FAR_APART:g}x the run's shortest, "
                 f"{nearest:.0f} ns), where 2-thread times run slower (bench/README.md, \"Near and far vCPUs\"): "
                 + "; ".join(f"{r.case.title} ({r.round_trip_ns:.0f} ns)" for r in far) + ".")
    return text


def present(args: argparse.Namespace, results: dict[str, list[Result]], machine: dict[str, Any],
            own: dict[str, Any], memory: dict[str, Any] | None, elapsed: float, load: list[float] | None) -> int:
    """Print the tables (or the README's table) and write the JSON; returns main()'s exit status."""
    record: list = []
    summary: list[Summary] = []
    made: list[tuple[list[Result], Table]] = []  # each table with the results it shows
    if "matmul" in results:
        made.append((results["matmul"], matmul_table(results["matmul"], own, record, summary)))
    if "tanh" in results:
        made.append((results["tanh"], tanh_table(results["tanh"], record, summary)))
    if "engine" in results:
        made.append((results["engine"], engine_table(results["engine"], record, summary)))
    if "rnn" in results:
        core_ops = [r for r in results["rnn"] if r.case.meta["kind"] == "core-ops-lstm"]
        steps = [r for r in results["rnn"] if r not in core_ops]
        made.append((steps, rnn_table(steps, record, summary)))
        if core_ops:
            made.append((core_ops, core_ops_lstm_table(core_ops, record, summary)))
    if "tbptt" in results:
        made.append((results["tbptt"], tbptt_table(results["tbptt"], memory, record)))
    trips = [r.round_trip_ns for fam in results.values() for r in fam if r.round_trip_ns]
    trips += [v for v in (machine.get("core_round_trip_ns") or {}).values() if v]
    for shown, table in made:
        note = distance_note(shown, min(trips) if trips else None)
        if note:
            table.notes.append(note)
    tables = [table for _, table in made]
    passed, total, errors = summarize(record)

    how = (f"Times are medians of up to {args.rounds} interleaved rounds (A B C, C B A, …), each round a block of at least {args.block * 1e3:g} ms of back-to-back calls per "
           f"library after {args.gap:g} s idle; after {args.budget:g} s a case starts no new round once it "
           "has 3. vs X = X's time ÷ minigrad's: above 1× minigrad is faster.")
    verdict = f"{passed} of {total} targets met" + (f"; {errors} result checks FAILED" if errors else "") + \
        f" ({args.mode} run, {elapsed:.0f} s" + (f"; load average at the end {load[0]}" if load else "") + \
        ")."
    if args.markdown:
        print(render_readme(machine, summary, how.split(" vs X")[0], f"**{verdict}**", args.mode))
    else:
        print("\n".join(harness.describe(machine)))
        print(how + " The best round is in parentheses.\n")
        print("\n\n".join(render_text(t) for t in tables))
        print("\n" + verdict)
    if args.json:
        data = {"machine": machine,
                "settings": {"mode": args.mode, "rounds": args.rounds, "block_s": args.block,
                             "budget_s": args.budget, "gap_s": args.gap, "families": args.families},
                "numpy_own_kernel": own, "tbptt_memory": memory, "verdicts": record,
                "summary": {"passed": passed, "targets": total, "check_failures": errors, "seconds": elapsed,
                            "load_average_at_end": load},
                "cases": [{"id": r.case.id, "family": r.case.family, "title": r.case.title,
                           "threads": r.threads, "per": r.case.per, "work": r.case.work, "unit": r.case.unit,
                           "meta": r.case.meta, "times": r.times, "error": r.error,
                           "round_trip_ns": r.round_trip_ns}
                          for fam in results.values() for r in fam]}
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
