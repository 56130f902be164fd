"""How much the RNN training step's time varies from one process to the next (issue 19, item 4).

Runs the float32 one-layer ``nn.RNN`` step (B=32 T=64 I=64 H=128, loss ``out.sum()``, SGD) in fresh
processes, each timing ``--blocks`` blocks of ``--steps`` steps and reporting the median per step; the
configurations (minigrad on 2 threads per threading runtime, minigrad on 1 thread, torch on 2 threads)
alternate process by process.  Prints each configuration's per-process medians and their spread: a user
sees the median of the process they happen to get, not the best block.

Before and after each process, every usable CPU's float32 FMA speed is measured at once (bench/harness.py's
``core_speeds``): on a virtual machine one core can run at half the other's speed for minutes while its
host sibling is busy, and a step split evenly over both then waits for it.  Each process is shown with the
lower of the two balances (slowest core over fastest), and each configuration's medians are summarised
separately for the processes that ran on equal cores (balance >= 0.9) and on unequal ones.  The CPUs'
distance is measured too (``core_round_trip``: one cache line's round trip between the first two): a
virtual machine's two vCPUs sometimes share an L3 cache and sometimes do not (a Zen 4 guest: 55-80 ns, then
330-370 ns for tens of seconds), and then every 2-thread step is slower.  Each process is shown with the
longer of its two round trips, and the medians are summarised for near and far processes (far: at least
harness.FAR_APART times the shortest round trip seen).

    python bench/spread.py                       # 8 processes per configuration
    python bench/spread.py --procs 10 --blocks 40 --threading pool,openmp
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, T, I, H = 32, 64, 64, 128


def minigrad_step():
    import minigrad as mg
    from minigrad import nn

    mg.manual_seed(0)
    model = nn.RNN(I, H, dtype="float32")
    opt = mg.optim.SGD(model.parameters(), lr=1e-4)
    x = mg.randn(T, B, I, dtype="float32")

    def step():
        opt.zero_grad()
        out, _ = model(x)
        out.sum().backward()
        opt.step()
    return step


def torch_step():
    import torch

    torch.manual_seed(0)
    model = torch.nn.RNN(I, H)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = torch.randn(T, B, I)

    def step():
        opt.zero_grad()
        out, _ = model(x)
        out.sum().backward()
        opt.step()
    return step


def child(lib, blocks, steps):
    """Per-step milliseconds of each block, after two warm-up blocks."""
    step = minigrad_step() if lib == "minigrad" else torch_step()
    times = []
    for b in range(blocks + 2):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if b >= 2:
            times.append((time.perf_counter() - t0) / steps * 1e3)
    return times


def configurations(threadings, torch=True):
    confs = [(f"minigrad 2 threads {t}", "minigrad", {"MINIGRAD_NUM_THREADS": "2", "MINIGRAD_THREADING": t})
             for t in threadings]
    confs.append(("minigrad 1 thread", "minigrad", {"MINIGRAD_NUM_THREADS": "1"}))
    if torch:
        confs.append(("torch 2 threads", "torch", {"OMP_NUM_THREADS": "2"}))
    return confs


def _harness():
    """bench.harness, importable when this file runs as a script."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    from bench import harness

    return harness


def _balance():
    """The slowest usable CPU's FMA speed over the fastest's right now (None where it cannot be measured)."""
    return _harness().core_balance(_harness().core_speeds())


def _round_trip():
    """One cache line's round trip between the first two usable CPUs right now, in ns (None where it cannot
    be measured)."""
    return _harness().core_round_trip()


EQUAL = 0.9  # cores at least this close count as equal


def run(procs=8, blocks=30, steps=10, threadings=("pool", "openmp"), torch=True):
    """({configuration: [median ms per step of each process]}, {configuration: [the cores' balance around
    each process]}, {configuration: [the longer round trip around each process]}), the processes
    alternating configurations."""
    confs = configurations(threadings, torch)
    medians = {name: [] for name, _, _ in confs}
    balances = {name: [] for name, _, _ in confs}
    trips = {name: [] for name, _, _ in confs}
    base = {k: v for k, v in os.environ.items() if not k.startswith("MINIGRAD_") and k != "OMP_NUM_THREADS"}
    for p in range(procs):
        for name, lib, env in confs[p % len(confs):] + confs[:p % len(confs)]:
            before, trip_before = _balance(), _round_trip()
            r = subprocess.run([sys.executable, __file__, "--child", lib, "--blocks", str(blocks),
                                "--steps", str(steps)], env={**base, **env}, cwd=REPO, capture_output=True,
                               text=True, timeout=600, check=False)
            if r.returncode:
                raise RuntimeError(f"{name}: the child process failed:\n{r.stderr}")
            after, trip_after = _balance(), _round_trip()
            medians[name].append(statistics.median(json.loads(r.stdout)))
            balances[name].append(None if before is None or after is None else min(before, after))
            trips[name].append(None if trip_before is None or trip_after is None else max(trip_before, trip_after))
            cores = "" if balances[name][-1] is None else f" (cores {balances[name][-1]:.2f})"
            trip = "" if trips[name][-1] is None else f" (round trip {trips[name][-1]:.0f} ns)"
            print(f"process {p + 1}/{procs}, {name}: {medians[name][-1]:.2f} ms{cores}{trip}", file=sys.stderr,
                  flush=True)
    return medians, balances, trips


def _summarise(medians, marks, first, labels, width):
    """Per configuration, the median of the process medians whose mark passes ``first`` and of the others,
    under ``labels``."""
    for name, ms in medians.items():
        groups = ([m for m, k in zip(ms, marks[name]) if first(k)],
                  [m for m, k in zip(ms, marks[name]) if not first(k)])
        part = [f"{label} {statistics.median(v):.2f} ms median over {len(v)}"
                for label, v in zip(labels, groups) if v]
        print(f"  {name:<{width}}  " + "; ".join(part))


def show(medians, balances=None, trips=None):
    width = max(len(n) for n in medians)
    print(f"{'':<{width}}  {'min':>6} {'median':>6} {'max':>6}  max/min  per-process medians (ms per step)"
          + ("" if balances is None else ", with the cores' balance")
          + ("" if trips is None else " and the CPUs' round trip"))
    for name, ms in medians.items():
        bal = balances[name] if balances else [None] * len(ms)
        trp = trips[name] if trips else [None] * len(ms)
        rows = sorted(zip(ms, bal, trp), key=lambda mbt: mbt[0])
        print(f"{name:<{width}}  {min(ms):6.2f} {statistics.median(ms):6.2f} {max(ms):6.2f}  "
              f"{max(ms) / min(ms):6.2f}x  "
              + " ".join(f"{m:.2f}" + ("" if b is None and t is None else
                                       " (" + ", ".join(([] if b is None else [f"{b:.2f}"])
                                                        + ([] if t is None else [f"{t:.0f} ns"])) + ")")
                         for m, b, t in rows))
    if balances and all(b is not None for bs in balances.values() for b in bs):
        print(f"by the cores' balance around each process (slowest core's FMA speed over the fastest's; "
              f"equal: >= {EQUAL}):")
        _summarise(medians, balances, lambda b: b >= EQUAL, ("equal cores", "unequal cores"), width)
    if trips and all(t is not None for ts in trips.values() for t in ts):
        nearest, far_apart = min(t for ts in trips.values() for t in ts), _harness().FAR_APART
        print(f"by the CPUs' distance around each process (one cache line's round trip; far: >= "
              f"{far_apart:g}x the shortest, {nearest:.0f} ns):")
        _summarise(medians, trips, lambda t: t < far_apart * nearest, ("near", "far"), width)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load:
        print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=8, help="fresh processes per configuration (default 8)")
    ap.add_argument("--blocks", type=int, default=30, help="timed blocks per process (default 30)")
    ap.add_argument("--steps", type=int, default=10, help="steps per block (default 10)")
    ap.add_argument("--threading", default="pool,openmp",
                    help="minigrad's runtimes to run on 2 threads, comma-separated")
    ap.add_argument("--no-torch", action="store_true",
                    help="leave torch out (on a busy machine its spinning OpenMP threads make it very slow)")
    ap.add_argument("--child", choices=["minigrad", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.blocks, args.steps)))
        return 0
    show(*run(args.procs, args.blocks, args.steps, tuple(args.threading.split(",")), not args.no_torch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
