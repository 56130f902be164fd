"""minigrad's two threading runtimes (MINIGRAD_THREADING=pool|openmp) side by side (issue 19, item 3).

Two workloads at 2 threads: a 1024^3 float32 product (against numpy's at 2 threads) and the float32
one-layer ``nn.RNN`` training step (B=32 T=64 I=64 H=128, loss ``out.sum()``, SGD).  Three conditions:

* ``idle``: 0.2 s of sleep before each block, so that nobody's threads are still spinning;
* ``busy``: beside a process that keeps one core spinning;
* ``after-numpy``: the co-tenancy case -- blocks of ~50 ms of numpy products alternate with the minigrad
  blocks, each minigrad block starting right after numpy's (OpenBLAS's threads still spinning).

Each (runtime, condition) runs in fresh processes, alternated round by round; a process reports the median
of its blocks.  Ratios: numpy's time / minigrad's for the product (above 1: minigrad faster), and each
runtime's RNN step against the pool's in the same condition.  ``openmp-passive`` is OpenMP with
``OMP_WAIT_POLICY=passive`` (libgomp's threads sleep at once after a region).

    python bench/cotenancy.py                   # 3 rounds
    python bench/cotenancy.py --rounds 5 --blocks 15
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIMES = {"pool": {"MINIGRAD_THREADING": "pool"},
            "openmp": {"MINIGRAD_THREADING": "openmp"},
            "openmp-passive": {"MINIGRAD_THREADING": "openmp", "OMP_WAIT_POLICY": "passive"}}
CONDITIONS = ("idle", "busy", "after-numpy")


def workloads():
    """{name: (minigrad callable, numpy callable or None)}; results checked once against numpy."""
    import numpy as np

    import minigrad as mg
    from minigrad import _backend, nn

    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    w = rng.standard_normal((1024, 1024)).astype(np.float32)
    np.testing.assert_allclose(_backend.matmul(a, w), a @ w, rtol=1e-3, atol=1e-2)
    mg.manual_seed(0)
    model = nn.RNN(64, 128, dtype="float32")
    opt = mg.optim.SGD(model.parameters(), lr=1e-4)
    x = mg.randn(64, 32, 64, dtype="float32")

    def step():
        opt.zero_grad()
        out, _ = model(x)
        out.sum().backward()
        opt.step()
    return {"matmul 1024^3": (lambda: _backend.matmul(a, w), lambda: a @ w), "rnn step": (step, None)}


def numpy_busy(seconds, a):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a @ a


def child(condition, blocks):
    """{workload: {"minigrad": median s per call, "numpy": ...}} for this process's runtime."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from minigrad import _backend

    _backend.set_num_threads(2)
    filler = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    result = {}
    with threadpool_limits(2, user_api="blas"):
        for name, (mg_fn, np_fn) in workloads().items():
            calls = {"minigrad": mg_fn} if np_fn is None else {"minigrad": mg_fn, "numpy": np_fn}
            per = {k: max(1, round(0.05 / timed(f))) for k, f in calls.items()}  # ~50 ms blocks
            times = {k: [] for k in calls}
            for _ in range(blocks):
                for k, f in calls.items():
                    if condition == "after-numpy":
                        numpy_busy(0.05, filler)
                    else:
                        time.sleep(0.2)
                    t0 = time.perf_counter()
                    for _ in range(per[k]):
                        f()
                    times[k].append((time.perf_counter() - t0) / per[k])
            result[name] = {k: statistics.median(v) for k, v in times.items()}
    return result


def timed(f):
    f()
    t0 = time.perf_counter()
    f()
    return max(time.perf_counter() - t0, 1e-6)


SPIN = "import time\nwhile True:\n    time.perf_counter()\n"


def run(rounds=3, blocks=10, runtimes=tuple(RUNTIMES), conditions=CONDITIONS):
    """{(runtime, condition): [per-process results]}, alternating runtimes within each condition."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MINIGRAD_") and k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    out = {(r, c): [] for r in runtimes for c in conditions}
    for rnd in range(rounds):
        for c in conditions:
            spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if c == "busy" else None
            try:
                order = runtimes[rnd % len(runtimes):] + runtimes[:rnd % len(runtimes)]
                for r in order:
                    p = subprocess.run([sys.executable, __file__, "--child", c, "--blocks", str(blocks)],
                                       env={**base, **RUNTIMES[r]}, cwd=REPO, capture_output=True, text=True,
                                       timeout=900, check=False)
                    if p.returncode:
                        raise RuntimeError(f"{r}, {c}: the child process failed:\n{p.stderr}")
                    out[r, c].append(json.loads(p.stdout))
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    return out


def show(out):
    runtimes = sorted({r for r, _ in out}, key=list(RUNTIMES).index)
    conditions = [c for c in CONDITIONS if any(k[1] == c for k in out)]
    print("medians over processes (spread: min-max); matmul: numpy's time / minigrad's at 2 threads;"
          " rnn: ms per step, and the pool's time / this runtime's")
    for c in conditions:
        for r in runtimes:
            procs = out[r, c]
            mm = [p["matmul 1024^3"]["numpy"] / p["matmul 1024^3"]["minigrad"] for p in procs]
            rnn = [p["rnn step"]["minigrad"] * 1e3 for p in procs]
            pool = statistics.median(p["rnn step"]["minigrad"] * 1e3 for p in out["pool", c])
            print(f"{c:<12} {r:<15} matmul {statistics.median(mm):5.2f}x numpy ({min(mm):.2f}-{max(mm):.2f})"
                  f"   rnn {statistics.median(rnn):6.2f} ms ({min(rnn):.2f}-{max(rnn):.2f})"
                  f"  {pool / statistics.median(rnn):5.2f}x pool")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per runtime and condition")
    ap.add_argument("--blocks", type=int, default=10, help="timed blocks per workload and process")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated, of " + ", ".join(RUNTIMES))
    ap.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated, of "
                    + ", ".join(CONDITIONS))
    ap.add_argument("--child", choices=CONDITIONS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.blocks)))
        return 0
    show(run(args.rounds, args.blocks, tuple(args.runtimes.split(",")), tuple(args.conditions.split(","))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
