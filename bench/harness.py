"""Thread control, interleaved timing and the machine description, shared by ``report.py``, the
pytest-benchmark suite and the CI smoke.

Nothing here changes ``OPENBLAS_*``: numpy runs with whatever kernel the environment gives it, and
``machine()`` records which one that was.
"""
from __future__ import annotations

import atexit
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from typing import Any

import numpy as np
import torch

import minigrad as mg

try:  # optional: without it numpy's BLAS thread count cannot be set, and the run says so
    import threadpoolctl
except ImportError:  # pragma: no cover - threadpoolctl is in the test extra
    threadpoolctl = None


# ---- threads -----------------------------------------------------------------------------------------

def thread_counts() -> dict[str, Any]:
    return {"minigrad": mg.get_num_threads(), "torch": torch.get_num_threads(),
            "numpy": numpy_blas().get("num_threads")}


@contextmanager
def minigrad_threads(n: int) -> Iterator[None]:
    """Only minigrad's thread count (e.g. to time its 1-thread run inside a 2-thread case)."""
    old = mg.get_num_threads()
    mg.set_num_threads(n)
    try:
        yield
    finally:
        mg.set_num_threads(old)


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run minigrad's kernels, numpy's BLAS and torch's intra-op pool with ``n`` threads each (None: leave
    every library at its default), restoring the previous counts afterwards."""
    if n is None:
        yield
        return
    old_mg, old_torch = mg.get_num_threads(), torch.get_num_threads()
    mg.set_num_threads(n)
    torch.set_num_threads(n)
    try:
        if threadpoolctl is None:
            yield
        else:
            # user_api="blas" only: an "openmp" limit would also hit minigrad's and torch's OpenMP runtimes
            with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
                yield
    finally:
        mg.set_num_threads(old_mg)
        torch.set_num_threads(old_torch)


# ---- timing ------------------------------------------------------------------------------------------

def _block(fn: Callable[[], Any], loops: int) -> float:
    """Seconds per call of ``fn`` over ``loops`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - t0) / loops


def quiesce(max_wait: float = 0.3, window: float = 0.005) -> float:
    """Wait, at most ``max_wait`` seconds, until no other thread of this process burns CPU; returns the wait.

    A library leaves its worker threads spinning after a call -- OpenBLAS for tens of milliseconds, libgomp
    and minigrad's pool for less -- and on 2 cores a spinning thread takes a core from the next block, which
    then measures two libraries at once.  Every block of every implementation starts after this.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(window)
        if time.process_time() - cpu < 0.2 * (time.perf_counter() - wall):
            break
    return time.perf_counter() - start


def calibrate(fn: Callable[[], Any], min_block: float) -> int:
    """Calls per timed block so that one block lasts at least ``min_block`` seconds (timeit's autorange)."""
    loops = 1
    while True:
        t = _block(fn, loops) * loops
        if t >= min_block:
            return loops
        # grow towards the goal, at most 10x per try, so a slow first call cannot overshoot much
        loops = max(loops + 1, min(loops * 10, int(loops * min_block / max(t, 1e-9) * 1.2)))


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, min_block: float,
                fixed_loops: int | None = None,
                around: dict[str, Callable[[], AbstractContextManager[Any]]] | None = None,
                budget: float | None = None, gap: float = 0.0,
                min_loops: int = 1) -> dict[str, dict[str, float]]:
    """Time every callable in ``fns`` in interleaved rounds, A B C then C B A, so that the machine's
    background load falls on all of them alike.

    Each round times one block per callable (``fixed_loops`` calls, or as many as make ``min_block``
    seconds but at least ``min_loops``, so that waking threads and clocks is amortised);
    ``around[name]()`` is entered around that callable's blocks (e.g. another thread count).
    After ``budget`` seconds no new round starts once 3 are done: on a busy machine a 2-thread round can take
    100x its best, and the best of fewer rounds is still a fair ratio.
    Each block starts after ``gap`` idle seconds and once the previous one's worker threads have stopped
    spinning (``quiesce``): a block measured right after another library's keeps losing a core to that
    library's spinning workers, and the idle gap lets them park as a user's program rarely calls two
    libraries back to back.
    Returns per name: ``best`` and ``median`` seconds per call over the rounds, ``rounds``, ``loops``.
    The garbage collector stays on (it is part of what an autograd graph costs) but starts each case empty.
    """
    around = around or {}
    gc.collect()
    started = time.perf_counter()
    loops = {}
    for name, fn in fns.items():
        with around.get(name, nullcontext)():
            loops[name] = fixed_loops or max(min_loops, calibrate(fn, min_block))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for r in range(rounds):
        if budget is not None and r >= 3 and time.perf_counter() - started > budget:
            break
        for name in order if r % 2 == 0 else order[::-1]:
            with around.get(name, nullcontext)():
                time.sleep(gap)
                quiesce()
                samples[name].append(_block(fns[name], loops[name]))
    return {name: {"best": min(s), "median": statistics.median(s), "rounds": len(s), "loops": loops[name]}
            for name, s in samples.items()}


# ---- what ran ----------------------------------------------------------------------------------------

def numpy_blas() -> dict[str, Any]:
    """numpy's BLAS as loaded in this process: library, version, kernel ("architecture": OpenBLAS's core
    type, e.g. Haswell or SkylakeX), thread count, and the OPENBLAS_CORETYPE the environment set."""
    info: dict[str, Any] = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)")}
    if threadpoolctl is not None:
        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        # torch may bring a BLAS of its own; numpy's lives in numpy's wheel (numpy.libs) or is the only one
        mine = [p for p in pools if "numpy" in p.get("filepath", "")] or pools
        if mine:
            p = mine[0]
            info.update(internal_api=p.get("internal_api"), version=p.get("version"),
                        architecture=p.get("architecture"), num_threads=p.get("num_threads"),
                        threading_layer=p.get("threading_layer"))
            return info
    try:  # without threadpoolctl: the build's BLAS name, the kernel stays unknown
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info.update(internal_api=blas.get("name"), version=blas.get("version"), architecture="unknown")
    except Exception:  # noqa: BLE001 - show_config's layout is not a stable API
        info.update(internal_api="unknown", architecture="unknown")
    return info


def numpy_kernel_label() -> str:
    """A short name for numpy's matmul kernel, e.g. ``OpenBLAS SkylakeX``."""
    b = numpy_blas()
    api = {"openblas": "OpenBLAS", "mkl": "MKL"}.get(str(b.get("internal_api")), str(b.get("internal_api")))
    return f"{api} {b.get('architecture')}"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openmp_runtime() -> dict[str, Any]:
    """The OpenMP runtime(s) this process loaded (torch's libgomp: see bench/__init__.py) and the
    OMP_WAIT_POLICY it read when it loaded."""
    libs: list[str] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                name = os.path.basename(path)
                if name.startswith(("libgomp", "libiomp", "libomp")) and path not in libs:
                    libs.append(path)
    except OSError:
        pass
    import bench  # the package records the policy before torch loads

    policy = bench.OMP_WAIT_POLICY_AT_LOAD
    return {"libraries": libs, "OMP_WAIT_POLICY_at_load": policy,
            "loaded_before_bench": bench.LOADED_BEFORE_BENCH}


def _compiled(name: str, flags: tuple[str, ...] = ()) -> str | None:
    """bench/<name>.c compiled with the C compiler Python was built with, once per process (removed at
    exit); None when that fails."""
    if name not in _EXES:
        _EXES[name] = None
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".c")
        cc = (sysconfig.get_config_var("CC") or "cc").split()
        tmp = tempfile.mkdtemp()
        atexit.register(shutil.rmtree, tmp, True)
        exe = os.path.join(tmp, name)
        try:
            if subprocess.run(cc + ["-O2", *flags, src, "-o", exe], check=False,
                              capture_output=True).returncode == 0:
                _EXES[name] = exe
        except OSError:
            pass
    return _EXES[name]


_EXES: dict[str, str | None] = {}


def _fma_exe() -> str | None:
    """bench/fma_peak.c, compiled (None when that fails)."""
    return _compiled("fma_peak")


def fma_peak(again: bool = False) -> dict[str, Any] | None:
    """One core's measured FMA peak, {'f32', 'f64' (GFLOP/s), 'isa'}: bench/fma_peak.c run once per
    process, or once more with ``again`` (each figure is the larger of the runs: a busy moment can only make
    a run slower).  None when there is no compiler or no x86-64."""
    global _FMA_PEAK
    if _FMA_PEAK is not False and not (again and _FMA_PEAK):
        return _FMA_PEAK
    exe, peak = _fma_exe(), None
    if exe:
        try:
            out = subprocess.run([exe], check=False, capture_output=True, text=True, timeout=60).stdout
            peak = parse_fma_peak(out)
        except (OSError, subprocess.SubprocessError):
            pass
    if _FMA_PEAK and peak:
        peak = {"f32": max(peak["f32"], _FMA_PEAK["f32"]), "f64": max(peak["f64"], _FMA_PEAK["f64"]),
                "isa": peak["isa"]}
    _FMA_PEAK = peak or _FMA_PEAK or None
    return _FMA_PEAK


def core_speeds(cpus: list[int] | None = None) -> dict[int, float] | None:
    """How fast each usable CPU runs float32 FMAs right now, in GFLOP/s: bench/fma_peak.c's quick mode
    (~0.1 s) pinned to every CPU at once, as a job on all of them sees them.  A virtual machine's cores can
    differ for minutes at a time -- one measured at half the other's speed while its host sibling is busy --
    and a job split evenly over both then waits for the slow one, whoever's code it is.  None off Linux,
    without a compiler or off x86-64."""
    exe = _fma_exe()
    if not exe or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0)) if cpus is None else list(cpus)
    procs = {}
    try:
        for cpu in cpus:
            procs[cpu] = subprocess.Popen([exe, "1", "0.03"], stdout=subprocess.PIPE, text=True,
                                          preexec_fn=partial(os.sched_setaffinity, 0, {cpu}))
        outs = {cpu: p.communicate(timeout=60)[0] for cpu, p in procs.items()}
    except (OSError, subprocess.SubprocessError):
        for p in procs.values():
            p.kill()
        return None
    speeds = {cpu: parse_fma_peak(out) for cpu, out in outs.items()}
    if not all(speeds.values()):
        return None
    return {cpu: peak["f32"] for cpu, peak in speeds.items()}


def core_balance(speeds: dict[int, float] | None) -> float | None:
    """The slowest CPU's speed over the fastest's (1.0: equal), from ``core_speeds``."""
    if not speeds:
        return None
    return min(speeds.values()) / max(speeds.values())


def core_round_trip(cpus: list[int] | None = None) -> float | None:
    """How far apart the first two usable CPUs are right now: the round trip of one cache line between a
    thread on each, in ns (bench/core_latency.c, best of 5 runs, ~10 ms).  On a virtual machine the two
    vCPUs sometimes share an L3 cache and sometimes do not (a 2-vCPU Zen 4 guest: 55-80 ns, then 330-370 ns
    for tens of seconds); then every hand-off and every cache line one thread writes and the other reads
    costs several times more, whichever library's threads they are.  None with fewer than two CPUs, off
    Linux or without a C compiler."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0)) if cpus is None else list(cpus)
    exe = _compiled("core_latency", ("-pthread",)) if len(cpus) >= 2 else None
    if not exe:
        return None
    try:
        out = subprocess.run([exe, str(cpus[0]), str(cpus[1])], check=False, capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_round_trip(out)


# Two round trips this many times apart: the CPUs moved apart (or together) between them.  (A 2-vCPU Zen 4
# guest: 55-80 ns near, 330-370 ns far; bench/README.md, "Near and far vCPUs".)
FAR_APART = 2.5


def round_trips_text(trip: dict[str, float | None]) -> str | None:
    """``{'start': ns, 'end': ns}`` (either may be None) as "68 / 54 ns", or None when neither was measured."""
    if not (trip.get("start") or trip.get("end")):
        return None
    return " / ".join("–" if not trip.get(k) else f"{trip[k]:.0f}" for k in ("start", "end")) + " ns"


def parse_round_trip(out: str) -> float | None:
    """core_latency.c's output, ``round_trip_ns <ns>``, as a float; None for anything else."""
    words = out.split()
    if len(words) != 2 or words[0] != "round_trip_ns":
        return None
    try:
        ns = float(words[1])
    except ValueError:
        return None
    return ns if 0 < ns < float("inf") else None


_FMA_PEAK: Any = False


def set_fma_peak(peak: dict[str, Any] | None) -> None:
    """Use a peak measured before (a saved run's) instead of measuring it."""
    global _FMA_PEAK
    _FMA_PEAK = peak


def parse_fma_peak(out: str) -> dict[str, Any] | None:
    """fma_peak.c's output, ``f32 <GFLOP/s> f64 <GFLOP/s> <isa>``, as {'f32', 'f64', 'isa'}; None for
    anything else (no output off x86-64, a garbled line, a peak that is not a positive number)."""
    words = out.split()
    if len(words) != 5 or words[0] != "f32" or words[2] != "f64":
        return None
    try:
        f32, f64 = float(words[1]), float(words[3])
    except ValueError:
        return None
    if not (0 < f32 < float("inf") and 0 < f64 < float("inf")):
        return None
    return {"f32": f32, "f64": f64, "isa": words[4]}


def jax_info() -> dict[str, Any]:
    """JAX's version and XLA's CPU thread count, when ``bench.jax_peer`` has loaded JAX; else why not."""
    from bench import jax_peer

    if not jax_peer.loaded():
        return {"error": jax_peer.unavailable_reason() or "not used in this run"}
    return {"version": jax_peer.version(), "threads": jax_peer.xla_threads()}


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages: on this shared 2-core machine, the context every number needs."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """The machine and every library's configuration, recorded with each run."""
    model, cores = platform.processor() or "unknown", None
    ident: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("unknown", "", platform.processor()):
                    model = value.strip()
                elif key == "cpu cores" and cores is None:
                    cores = int(value)
                elif key in ("cpu family", "model") and key not in ident:
                    ident[key] = value.strip()
    except OSError:
        pass
    # a VM may name the CPU only "AMD EPYC": family and model tell the generation (25/17: Zen 4)
    if ident:
        model += f" (family {ident.get('cpu family', '?')}, model {ident.get('model', '?')})"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    flags = cpu_flags()
    return {
        "cpu": model,
        "physical_cores": cores,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "isa_flags": sorted(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16")
                            if f in flags),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "minigrad": mg.config(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "openmp": openmp_runtime(),
        "jax": jax_info(),
        "fma_peak_per_core": fma_peak(),
        "load_average": load_average(),
        "threadpoolctl": threadpoolctl.__version__ if threadpoolctl is not None else None,
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("OPENBLAS_", "OMP_", "MINIGRAD_", "MKL_", "GOMP_", "XLA_"))},
    }


def describe(m: dict[str, Any]) -> list[str]:
    """``machine()`` as a few human-readable lines."""
    cfg, blas = m["minigrad"], m["numpy_blas"]
    cpu = (f"CPU: {m['cpu']}, {m['physical_cores']} cores ({m['usable_cpus']} usable CPUs), "
           f"{' '.join(m['isa_flags'])}")
    parallel = {"pool": "its own pthread pool", "none": "no threading"}.get(cfg["parallel"], cfg["parallel"])
    mini = (f"minigrad {cfg['version']}: backend {cfg['backend']}, ISA path {cfg['isa']}, "
            f"{cfg['num_threads']} threads, threading backend {parallel}"
            + (", caching allocator" if cfg.get("caching_allocator") else ", numpy's allocator"))
    numpy = (f"numpy {m['numpy']}: {blas.get('internal_api')} {blas.get('version')}, kernel "
             f"{blas.get('architecture')} (OPENBLAS_CORETYPE={blas['OPENBLAS_CORETYPE']}), "
             f"{blas.get('num_threads')} threads")
    tor = f"torch {m['torch']}: {m['torch_threads']} threads, CPU capability {m['torch_cpu_capability']}"
    omp = m["openmp"]
    libs = ", ".join("/".join(lib.split("/")[-3:]) for lib in omp["libraries"]) or "none loaded"
    owner = "torch's" if any("torch" in lib for lib in omp["libraries"]) else "the system's"
    policy = omp["OMP_WAIT_POLICY_at_load"]
    if policy == "(unset)":
        policy = "unset (libgomp's default: spin, then sleep)"
    ompl = f"OpenMP (torch's kernels only): {owner} runtime ({libs}); OMP_WAIT_POLICY when it loaded: {policy}"
    py = f"Python {m['python']}" + (f"; environment now: {m['env']}" if m["env"] else "")
    peak = m.get("fma_peak_per_core")
    peakl = (f"one core's FMA peak, measured (bench/fma_peak.c, {peak['isa']}): {peak['f32']:.0f} GFLOP/s f32, "
             f"{peak['f64']:.0f} f64" if peak else "one core's FMA peak: not measured (no C compiler or not x86-64)")
    jx = m.get("jax") or {}
    jaxl = (f"JAX {jx['version']} (jit, XLA CPU): {jx['threads']} threads (XLA sizes its pool from the "
            "process's CPU affinity)" if jx.get("version") else f"JAX: {jx.get('error', 'not loaded')}")
    lines = [cpu, peakl, mini, numpy, tor, jaxl, ompl, py]
    speeds = m.get("core_speeds") or {}
    start, end = speeds.get("start"), speeds.get("end")
    if start and end:
        # (JSON turns the CPU numbers into strings)
        cpus = sorted(start, key=int)
        lowest = min(core_balance(start), core_balance(end))
        lines.append("each CPU's float32 FMA speed, all measured at once, at the start / end of the run: "
                     + ", ".join(f"CPU {c} {start[c]:.0f} / {end.get(c, float('nan')):.0f}" for c in cpus)
                     + " GFLOP/s" + ("" if lowest >= 0.9 else
                                    f" -- unequal cores (the slower at {lowest:.0%} of the faster): a 2-thread "
                                    "row waits for the slower one, whichever library runs it"))
    trip = m.get("core_round_trip_ns") or {}
    text = round_trips_text(trip)
    if text:
        ns = [v for v in trip.values() if v]
        lines.append("one cache line's round trip between the first two CPUs (bench/core_latency.c), at the start / "
                     "end of the run: " + text + ("" if max(ns) < FAR_APART * min(ns) else
                                                  " -- the CPUs moved apart or together during the run: 2-thread "
                                                  "rows differ by phase"))
    load = m.get("load_average")
    if load:
        busy = load[0] > 0.5 * (m["usable_cpus"] or 1)
        lines.append(f"load average at the start (1/5/15 min): {load[0]} / {load[1]} / {load[2]} on "
                     f"{m['usable_cpus']} CPUs" + (" -- a busy machine: 2-thread rows are unreliable" if busy else ""))
    return lines
