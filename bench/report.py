#!/usr/bin/env python
"""The ratio table of issue 4: minigrad against numpy and torch, measured in one run, interleaved.

    python bench/report.py [--quick] [--markdown] [--json PATH] [--only matmul,tanh,engine,rnn,tbptt]

Every case of ``bench/cases.py`` is built, its result checked once, then timed in rounds A B C, C B A, ...
(each round one block of calls per implementation), and the best round is kept: the machine is shared and
noisy, so only ratios measured side by side mean anything.  ``speedup = peer's time / minigrad's time``
(above 1: minigrad is faster).  The numpy-with-AVX-512-OpenBLAS comparison runs in a child process with
``OPENBLAS_CORETYPE=SkylakeX`` (minigrad and numpy interleaved there too); this process leaves the
environment's OPENBLAS_* alone and records which kernel its numpy ran.

``main(argv)`` is importable (``minigrad bench`` runs this script); it returns the exit status: 0, or 1 if
a result check failed.  Targets that are missed are reported, not failed.
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

from bench import cases, harness  # first: it fixes which OpenMP runtime this process gets

# The per-core matmul targets: 85 % of the 228 / 114 GFLOP/s that ../shared/reference/performance.md
# gives for one core.  "% of core peak" divides by the peak measured in this run (harness.fma_peak(): 271 /
# 136 on the Zen 5 development machine, 117 / 58 on a Zen 4, which issues one 512-bit FMA per cycle), or by
# these nominal figures when it cannot be measured.
NOMINAL_PEAK_PER_CORE = {"f32": 228.0, "f64": 114.0}
TARGET_PER_CORE = {"f32": 195.0, "f64": 97.0}
NOISE = 0.97            # "never slower" allows 3 % of measurement noise
TBPTT_TIME_FLAT = 1.15  # late/early window time within 15 % counts as independent of the position
TBPTT_PEAK_FLAT = 1.10
TBPTT_RETAINED_SLACK = 65536

# rounds per case, seconds per timed block, seconds after which a case stops adding rounds (once it has 3)
SETTINGS = {"full": {"rounds": 9, "block": 0.02, "budget": 12.0},
            "quick": {"rounds": 5, "block": 0.004, "budget": 2.0}}


# ---- measuring ---------------------------------------------------------------------------------------

@dataclass
class Result:
    case: cases.Case
    times: dict[str, dict[str, float]] = field(default_factory=dict)  # impl -> best/median/rounds/loops
    threads: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def best(self, impl: str) -> float | None:
        t = self.times.get(impl)
        return t["best"] / self.case.per if t else None


def measure(case: cases.Case, rounds: int, block: float, impls: list[str] | None = None,
            budget: float | None = None) -> Result:
    """Build every implementation, check each one's first result, then time them interleaved.  A 2-thread
    matmul case also times minigrad with one thread in the same rounds (the thread-scaling ratio)."""
    res = Result(case)
    with harness.threads(case.threads):
        res.threads = harness.thread_counts()
        fns = {}
        for name, make in case.impls.items():
            if impls is not None and name not in impls:
                continue
            fn = make()
            try:
                case.check(name, fn())
            except AssertionError as e:
                res.error = f"{name}: wrong result: {e}"
                return res
            fns[name] = fn
        around = {}
        if case.family == "matmul" and case.threads == 2 and "minigrad" in fns:
            fns["minigrad 1 thread"] = fns["minigrad"]
            around["minigrad 1 thread"] = lambda: harness.minigrad_threads(1)
        res.times = harness.interleaved(fns, case.fixed_rounds or rounds, block,
                                        fixed_loops=1 if case.fixed_rounds else None, around=around,
                                        budget=None if case.fixed_rounds else budget)
    return res


def run_cases(selected: list[cases.Case], args: argparse.Namespace, impls: list[str] | None = None,
              label: str = "") -> list[Result]:
    results = []
    for i, case in enumerate(selected, 1):
        t0 = time.perf_counter()
        results.append(measure(case, args.rounds, args.block, impls, args.budget))
        status = results[-1].error or f"{time.perf_counter() - t0:.1f} s"
        print(f"{label}[{i}/{len(selected)}] {case.title}: {status}", file=sys.stderr, flush=True)
    return results


def openblas_skylakex(args: argparse.Namespace) -> dict[str, Any]:
    """The matmul cases, minigrad vs numpy, in a child process whose OpenBLAS is forced to SkylakeX."""
    if "avx512f" not in harness.cpu_flags():
        return {"error": "no AVX-512 on this CPU"}
    command = [sys.executable, str(Path(__file__).resolve()), "--openblas-child", "--rounds", str(args.rounds),
               "--block", str(args.block), "--budget", str(args.budget)] + (["--quick"] if args.quick else [])
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX")
    proc = subprocess.run(command, check=False, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        return {"error": f"child exited with status {proc.returncode}"}
    return json.loads(proc.stdout)


def child_main(args: argparse.Namespace) -> int:
    results = run_cases(cases.matmul_cases(args.quick), args, ["minigrad", "numpy"], label="SkylakeX child ")
    json.dump({"numpy_blas": harness.numpy_blas(),
               "results": {r.case.id: {k: v["best"] for k, v in r.times.items()} for r in results},
               "errors": {r.case.id: r.error for r in results if r.error}}, sys.stdout)
    return 0


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


def matmul_table(results: list[Result], skx: dict[str, Any], record: list) -> Table:
    peak = harness.fma_peak() or NOMINAL_PEAK_PER_CORE
    skx_res = skx.get("results", {})
    skx_label = f"vs numpy {skx['numpy_blas'].get('architecture')}" if "numpy_blas" in skx else "vs SkylakeX"
    t = Table("matmul", ["case", "threads", "minigrad", "numpy", "torch", "vs numpy", "vs torch", skx_label,
                         "vs 1 thread", "GFLOP/s", "% of core peak", "target", "result"])
    for r in results:
        c, m = r.case, r.case.meta
        name = f"{m['dtype']} {m['m']}×{m['k']} @ {m['k']}×{m['n']}" + (" (Wᵀ view)" if m["transposed"] else "")
        if r.error:
            t.rows.append([name, str(c.threads), "CHECK FAILED", *["–"] * 9, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, np_t, th_t = r.best("minigrad"), r.best("numpy"), r.best("torch")
        gflops = c.work / mg_t / 1e9
        per_core = gflops / c.threads
        child = skx_res.get(c.id, {})
        vs_skx = ratio(child.get("numpy"), child.get("minigrad"))
        vs_1t = ratio(r.best("minigrad 1 thread"), mg_t)
        tg = Targets()
        small = min(m["m"], m["k"], m["n"])
        need_np = 1.5 if small >= 256 else 1.0
        tg.need(f"≥{need_np}× numpy", ratio(np_t, mg_t), need_np)
        if "error" not in skx:
            tg.need("≥0.9× SkylakeX", vs_skx, 0.9)
        # one core's peak is reachable once the product is big enough: n >= 256 on one thread, n >= 512 on 2
        if m["square"] and m["n"] >= (256 if c.threads == 1 else 512):
            tg.need(f"≥{TARGET_PER_CORE[m['dtype']]:.0f} GF/core", per_core, TARGET_PER_CORE[m["dtype"]])
        if c.threads == 2:
            if m["square"] and m["n"] >= 512:
                tg.need("2 threads ≥1.7× 1", vs_1t, 1.7)
            else:
                tg.need("2 threads ≥ 1", vs_1t, NOISE)
        t.rows.append([name, str(c.threads), fmt_time(mg_t), fmt_time(np_t), fmt_time(th_t),
                       fmt_x(ratio(np_t, mg_t)), fmt_x(ratio(th_t, mg_t)), fmt_x(vs_skx), fmt_x(vs_1t),
                       f"{gflops:.1f}", f"{per_core / peak[m['dtype']]:.0%}", tg.text, tg.verdict])
        record.append({"case": c.id, "gflops": gflops, "gflops_per_core": per_core, "vs_skylakex": vs_skx,
                       "vs_1_thread": vs_1t, "targets": tg.json()})
    source = "measured by bench/fma_peak.c" if harness.fma_peak() else "nominal: no measurement"
    t.notes.append(f"% of core peak = GFLOP/s ÷ threads ÷ one core's FMA peak ({peak['f32']:.0f} f32 / "
                   f"{peak['f64']:.0f} f64 GFLOP/s, {source}); the ≥1.5× numpy target applies when every "
                   "dimension is ≥ 256, ≥1.0× otherwise.")
    if peak["f32"] < TARGET_PER_CORE["f32"] or peak["f64"] < TARGET_PER_CORE["f64"]:
        t.notes.append(f"The ≥{TARGET_PER_CORE['f32']:.0f} / ≥{TARGET_PER_CORE['f64']:.0f} GF/core targets "
                       "exceed this machine's measured peak: no kernel can meet them here.")
    if "numpy_blas" in skx:
        t.notes.append(f"{skx_label}: minigrad vs numpy in a child process with OPENBLAS_CORETYPE=SkylakeX "
                       f"(its numpy ran {skx['numpy_blas'].get('internal_api')} "
                       f"{skx['numpy_blas'].get('architecture')}), interleaved there.")
    else:
        t.notes.append(f"OpenBLAS SkylakeX comparison not run: {skx.get('error')}")
    t.notes.append("vs 1 thread: minigrad's 1-thread time / its 2-thread time, timed in the same rounds; "
                   f"'never slower' allows {1 - NOISE:.0%} noise.")
    return t


def tanh_table(results: list[Result], record: list) -> Table:
    t = Table("tanh", ["case", "threads", "minigrad", "numpy", "torch", "vs numpy", "vs torch",
                       "Gelem/s minigrad", "numpy", "torch", "target", "result"])
    for r in results:
        c, m = r.case, r.case.meta
        name = f"{m['dtype']} {m['label']}"
        if r.error:
            t.rows.append([name, str(c.threads), "CHECK FAILED", *["–"] * 8, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, np_t, th_t = r.best("minigrad"), r.best("numpy"), r.best("torch")
        tg = Targets()
        need_np = 1.6 if c.threads == 2 and m["size"] >= 1 << 18 else 1.0
        tg.need(f"≥{need_np}× numpy", ratio(np_t, mg_t), need_np)
        tg.need("≥5× torch", ratio(th_t, mg_t), 5.0)
        rate = [f"{c.work / x / 1e9:.2f}" for x in (mg_t, np_t, th_t)]
        t.rows.append([name, str(c.threads), fmt_time(mg_t), fmt_time(np_t), fmt_time(th_t),
                       fmt_x(ratio(np_t, mg_t)), fmt_x(ratio(th_t, mg_t)), *rate, tg.text, tg.verdict])
        record.append({"case": c.id, "gelem_s": c.work / mg_t / 1e9, "targets": tg.json()})
    t.notes.append("np.tanh is single-threaded; minigrad and torch use the row's thread count. Each result is "
                   "checked once against a long-double tanh (minigrad ≤ 2 ulp).")
    return t


def engine_table(results: list[Result], record: list) -> Table:
    t = Table("engine overhead", ["case", "minigrad", "torch", "minigrad ÷ torch time", "vs torch", "target",
                                  "result"])
    for r in results:
        c = r.case
        name = "add (1, 4) + (1, 4), one requires grad" if c.meta["what"] == "add" else \
            f"chain of {c.per} nodes (mul, tanh), fwd+bwd per node"
        if r.error:
            t.rows.append([name, "CHECK FAILED", *["–"] * 4, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, th_t = r.best("minigrad"), r.best("torch")
        tg = Targets()
        tg.need("≤0.3× torch's time", ratio(mg_t, th_t), 0.3, at_most=True)
        t.rows.append([name, fmt_time(mg_t), fmt_time(th_t), f"{ratio(mg_t, th_t):.2f}",
                       fmt_x(ratio(th_t, mg_t)), tg.text, tg.verdict])
        record.append({"case": c.id, "targets": tg.json()})
    return t


def rnn_table(results: list[Result], record: list) -> Table:
    t = Table("RNN training step", ["case", "threads", "minigrad", "torch nn.RNN", "torch RNNCell loop",
                                    "vs torch", "vs RNNCell loop", "target", "result"])
    for r in results:
        c, m = r.case, r.case.meta
        name = f"{m['dtype']} {m['config']}"
        if r.error:
            t.rows.append([name, "", "CHECK FAILED", *["–"] * 5, r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        mg_t, th_t, cell_t = r.best("minigrad"), r.best("torch"), r.best("torch-cell")
        tg = Targets()
        need = 2.0 if m["hidden"] <= 128 else 1.3
        tg.need(f"≥{need}× torch", ratio(th_t, mg_t), need)
        if cell_t is not None:
            tg.need("≥3× RNNCell loop", ratio(cell_t, mg_t), 3.0)
        t.rows.append([name, f"{r.threads['minigrad']}/{r.threads['torch']}", fmt_time(mg_t), fmt_time(th_t),
                       fmt_time(cell_t), fmt_x(ratio(th_t, mg_t)), fmt_x(ratio(cell_t, mg_t)), tg.text,
                       tg.verdict])
        record.append({"case": c.id, "targets": tg.json()})
    t.notes.append("One step = zero_grad, forward, MSE loss, backward, SGD step, the same initial weights in "
                   "every implementation; threads = minigrad's / torch's (their defaults).  Each result "
                   "(loss, every gradient, the updated weights) is checked against float64 torch.")
    return t


def tbptt_table(results: list[Result], memory: dict[str, Any] | None, record: list) -> Table:
    t = Table("truncated BPTT", ["measure", "early", "late", "late ÷ early", "target", "result"])
    for r in results:
        c = r.case
        if r.error:
            t.rows.append([c.title, "CHECK FAILED", "–", "–", "–", r.error])
            record.append({"case": c.id, "error": r.error})
            continue
        early, late = r.best("minigrad early"), r.best("minigrad late")
        tg = Targets()
        tg.need(f"≤{TBPTT_TIME_FLAT}×", ratio(late, early), TBPTT_TIME_FLAT, at_most=True)
        t.rows.append(["time per window (minigrad)", fmt_time(early), fmt_time(late),
                       f"{ratio(late, early):.2f}", tg.text, tg.verdict])
        t.rows.append(["time per window (torch, for scale)", fmt_time(r.best("torch early")), "", "", "", ""])
        t.notes.append(f"{c.title}: early = windows 1, 2, …; late = after {c.meta['late']} windows; the two "
                       f"runs alternate window by window ({c.fixed_rounds} each), best window kept.")
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
        t.notes.append(f"memory: windows {e['first_window']}… vs {lt['first_window']}… of a fresh run, median of "
                       "5; tracemalloc runs from each window's start to its end (numpy's buffers included).")
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


def render_markdown(table: Table) -> str:
    def esc(v: str) -> str:
        return v.replace("|", "\\|")
    align = [":--" if i in (0, len(table.columns) - 2, len(table.columns) - 1) else "--:"
             for i in range(len(table.columns))]
    out = [f"#### {table.title}", "", "| " + " | ".join(table.columns) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(esc(v) for v in row) + " |" for row in table.rows]
    if table.notes:
        out += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(out)


def summarize(record: list) -> tuple[int, int, int]:
    targets = [t for r in record for t in r.get("targets", [])]
    errors = sum(1 for r in record if r.get("error"))
    return sum(t["pass"] for t in targets), len(targets), errors


# ---- main --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer sizes and rounds (under a minute)")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    p.add_argument("--json", metavar="PATH", help="also write every measurement and verdict as JSON")
    p.add_argument("--only", metavar="FAMILIES", help=f"comma-separated subset of {','.join(cases.FAMILIES)}")
    p.add_argument("--rounds", type=int, help="interleaved rounds per case (default 9, quick 5)")
    p.add_argument("--block", type=float, help="seconds of calls per timed block (default 0.02, quick 0.004)")
    p.add_argument("--budget", type=float, help="seconds after which a case adds no more rounds once it has 3 "
                   "(default 12, quick 2)")
    p.add_argument("--openblas-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    mode = SETTINGS["quick" if args.quick else "full"]
    args.rounds = args.rounds or mode["rounds"]
    args.block = args.block or mode["block"]
    args.budget = args.budget or mode["budget"]
    args.families = args.only.split(",") if args.only else list(cases.FAMILIES)
    unknown = set(args.families) - set(cases.FAMILIES)
    if unknown:
        p.error(f"unknown case families {sorted(unknown)}; choose from {list(cases.FAMILIES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.openblas_child:
        return child_main(args)
    started = time.perf_counter()
    machine = harness.machine()
    # the child first: it imports minigrad afresh, and in a checkout that others are editing the build can
    # go stale (and the import fail) while the rest runs
    skx = openblas_skylakex(args) if "matmul" in args.families else {}
    results = {fam: run_cases(cases.FAMILIES[fam](args.quick), args) for fam in args.families}
    memory = None
    if "tbptt" in results:
        late = results["tbptt"][0].case.meta["late"]
        memory = cases.tbptt_memory(late=late)
    record: list = []
    tables = []
    if "matmul" in results:
        tables.append(matmul_table(results["matmul"], skx, record))
    if "tanh" in results:
        tables.append(tanh_table(results["tanh"], record))
    if "engine" in results:
        tables.append(engine_table(results["engine"], record))
    if "rnn" in results:
        tables.append(rnn_table(results["rnn"], record))
    if "tbptt" in results:
        tables.append(tbptt_table(results["tbptt"], memory, record))
    passed, total, errors = summarize(record)
    elapsed = time.perf_counter() - started

    how = (f"Times are the best of up to {args.rounds} interleaved rounds (A B C, C B A, …), each round at least "
           f"{args.block * 1e3:g} ms of back-to-back calls per implementation; after {args.budget:g} s a case "
           "starts no new round once it has 3. speedup = peer's time ÷ minigrad's time: above 1× minigrad is "
           "faster.")
    load = harness.load_average()
    summary = f"{passed} of {total} targets met" + (f"; {errors} result checks FAILED" if errors else "") + \
        f" ({'quick' if args.quick else 'full'} run, {elapsed:.0f} s" + \
        (f"; load average at the end {load[0]}" if load else "") + ")."
    if args.markdown:
        print("Measured with `python bench/report.py" + (" --quick" if args.quick else "") + " --markdown` on:\n")
        print("\n".join(f"- {line}" for line in harness.describe(machine)))
        print(f"\n{how}\n")
        print("\n\n".join(render_markdown(t) for t in tables))
        print(f"\n**{summary}**")
    else:
        print("\n".join(harness.describe(machine)))
        print(how + "\n")
        print("\n\n".join(render_text(t) for t in tables))
        print("\n" + summary)
    if args.json:
        data = {"machine": machine, "settings": {"quick": args.quick, "rounds": args.rounds, "block_s": args.block,
                                                 "budget_s": args.budget, "families": args.families},
                "openblas_skylakex": skx, "tbptt_memory": memory, "verdicts": record,
                "summary": {"passed": passed, "targets": total, "check_failures": errors, "seconds": elapsed,
                            "load_average_at_end": load},
                "cases": [{"id": r.case.id, "family": r.case.family, "title": r.case.title,
                           "threads": r.threads, "per": r.case.per, "work": r.case.work, "unit": r.case.unit,
                           "meta": r.case.meta, "times": r.times, "error": r.error}
                          for fam in results.values() for r in fam]}
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
