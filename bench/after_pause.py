"""What a pause costs the training steps after it (issue 19: the report's idle gap and 10-step blocks).

``bench/report.py`` idles before every timed block (``--gap``, 0.2 s) so that the previous library's
spinning workers park, and times at least 10 steps a block so that waking threads and clocks is amortised.
This script measures how much amortising there is to do: the float32 one-layer RNN training step of the
report (B=32 T=64 I=64 H=128, loss ``(out * w).sum()``, SGD; ``bench.cases``) of each library, 2 threads
each, timed step by step in blocks of ``--steps`` steps, every block started

- ``loop``:  straight after the same library's previous block, as in a training loop;
- ``pause``: after ``--pause`` seconds asleep, as a report block starts (its gap);
- ``other``: straight after a block of another library.

Per library and start it prints the median (over ``--blocks`` blocks) of the first and second step and of the
steps after them, each over the library's steady step (the median of the ``loop`` blocks' steps from the third
on), and how much a 10-step block's mean then exceeds the steady step: what a report row carries of the pause.

    python bench/after_pause.py
    python bench/after_pause.py --blocks 30 --pause 0.02 --libs minigrad,torch
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STARTS = ("loop", "pause", "other")
BLOCK_OF_REPORT = 10  # steps: cases.RNN_MIN_LOOPS


def position_medians(blocks: list[list[float]]) -> list[float]:
    """The median of each position (step 1, 2, ...) over blocks of equal length."""
    return [statistics.median(column) for column in zip(*blocks)]


def summary(times: dict[str, list[list[float]]]) -> dict[str, float]:
    """From one library's step times per start (blocks of seconds), the steady step (seconds) and, per
    start, the first step, the second and the steps after them over the steady step, and a 10-step block's
    mean over it."""
    steady = statistics.median(t for block in times["loop"] for t in block[2:])
    out = {"steady": steady}
    for start, blocks in times.items():
        med = position_medians(blocks)
        out[f"{start} first"] = med[0] / steady
        out[f"{start} second"] = med[1] / steady
        out[f"{start} rest"] = statistics.median(med[2:]) / steady
        out[f"{start} block"] = statistics.fmean(med[:BLOCK_OF_REPORT]) / steady
    return out


def show(times: dict[str, dict[str, list[list[float]]]]) -> None:
    print(f"{'library':<10} {'start':<6} {'step 1':>7} {'step 2':>7} {'later':>7} "
          f"{f'{BLOCK_OF_REPORT}-step block':>14}   (each over the library's steady step)")
    for lib, per_start in times.items():
        s = summary(per_start)
        for start in per_start:
            print(f"{lib:<10} {start:<6} {s[f'{start} first']:>6.2f}x {s[f'{start} second']:>6.2f}x "
                  f"{s[f'{start} rest']:>6.2f}x {s[f'{start} block']:>13.3f}x")
        print(f"{'':<10} steady step {s['steady'] * 1e3:.2f} ms")


def _block(step, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def run(libs: list[str], blocks: int, steps: int, pause: float) -> dict[str, dict[str, list[list[float]]]]:
    if steps < BLOCK_OF_REPORT:
        raise ValueError(f"--steps must be at least {BLOCK_OF_REPORT} (a report block's steps), got {steps}")
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import torch

    import minigrad as mg
    from bench import cases, jax_peer

    cfg, make = cases.RNN_CONFIGS[0], {"minigrad": cases._minigrad_rnn_step, "torch": cases._torch_rnn_step,
                                       "jax": cases._jax_rnn_step}
    unknown = [lib for lib in libs if lib not in make]
    if unknown:
        raise ValueError(f"--libs: unknown {', '.join(unknown)} (choose from {', '.join(make)})")
    mg.set_num_threads(2)
    torch.set_num_threads(2)
    if "jax" in libs and jax_peer.unavailable_reason():
        print(f"jax left out: {jax_peer.unavailable_reason()}")
        libs = [lib for lib in libs if lib != "jax"]
    step = {lib: make[lib]("rnn", cfg, cases.F32) for lib in libs}
    for lib in libs:  # compiled (JAX), packed and allocated before anything is timed
        _block(step[lib], 20)
    times: dict[str, dict[str, list[list[float]]]] = {lib: {s: [] for s in STARTS} for lib in libs}
    for _ in range(blocks):
        for i, lib in enumerate(libs):
            _block(step[lib], steps)
            times[lib]["loop"].append(_block(step[lib], steps))
            time.sleep(pause)
            times[lib]["pause"].append(_block(step[lib], steps))
            if len(libs) > 1:
                _block(step[libs[(i + 1) % len(libs)]], steps)
                times[lib]["other"].append(_block(step[lib], steps))
    return {lib: {s: b for s, b in per.items() if b} for lib, per in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--libs", default="minigrad,torch,jax", help="comma-separated: minigrad, torch, jax")
    p.add_argument("--blocks", type=int, default=15, help="blocks per library and start (default 15)")
    p.add_argument("--steps", type=int, default=12, help="steps per block (default 12)")
    p.add_argument("--pause", type=float, default=0.2, help="seconds asleep before a 'pause' block (default 0.2)")
    args = p.parse_args(argv)
    if args.blocks < 1 or args.pause < 0:
        p.error("--blocks must be at least 1 and --pause not negative")
    try:
        times = run([lib for lib in args.libs.split(",") if lib], args.blocks, args.steps, args.pause)
    except ValueError as e:
        p.error(str(e))
    show(times)


if __name__ == "__main__":
    main()
