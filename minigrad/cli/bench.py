"""Run the benchmark suite and print minigrad's time relative to PyTorch's.

The suite lives in the source tree (``bench/``), not in the installed package: run this from a checkout.
``bench/report.py`` prints the ratio table; without it, the suite runs under pytest-benchmark.  Any other
arguments are passed on to it, e.g. ``minigrad bench --smoke`` (seconds), ``minigrad bench --quick`` or
``minigrad bench --only rnn --markdown``; ``pip install -e ".[bench]"`` adds JAX as a peer.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import minigrad
from minigrad.cli.common import CLIError

HELP = "run the benchmark suite's ratio table against numpy, PyTorch and JAX (source checkout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: main() hands every other argument to the runner as ``args.extra``."""


def suite_dir() -> Path:
    """Where a source checkout keeps the benchmark suite: ``bench/`` beside the ``minigrad`` package."""
    return Path(minigrad.__file__).resolve().parent.parent / "bench"


def run(args: argparse.Namespace) -> int:
    bench = suite_dir()
    report = bench / "report.py"
    if report.is_file():
        command = [sys.executable, str(report), *args.extra]
    elif any(bench.glob("test_*.py")) or any(bench.glob("bench_*.py")):
        command = [sys.executable, "-m", "pytest", str(bench), "--benchmark-only", *args.extra]
    else:
        raise CLIError(f"no benchmark suite at {bench}: `minigrad bench` runs from a minigrad source "
                       "checkout (git clone the repository, pip install -e '.[test]', then run it there)")
    print("$ " + " ".join(command), flush=True)
    return subprocess.call(command, cwd=bench.parent)
