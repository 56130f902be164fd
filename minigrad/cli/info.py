"""Print what this minigrad build runs on: version, kernel backend and ISA path, OpenMP, threads, numpy's BLAS
and the optional packages that other commands use.

Environment variables that change the answers: MINIGRAD_BACKEND, MINIGRAD_ISA, MINIGRAD_NUM_THREADS,
OMP_NUM_THREADS (minigrad's kernels); OPENBLAS_NUM_THREADS, OPENBLAS_CORETYPE (numpy's OpenBLAS).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil

import numpy as np

import minigrad as mg

HELP = "show version, kernels, ISA path, OpenMP, threads and numpy's BLAS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``info`` takes no options."""


_PARALLEL = {"pool": "yes (minigrad's thread pool)", "openmp": "yes (OpenMP)"}


def run(args: argparse.Namespace) -> int:
    cfg = mg.config()
    system = f"{platform.python_implementation()} on {platform.system()} {platform.machine()}"
    rows = [
        ("minigrad", f"{cfg['version']}  ({os.path.dirname(mg.__file__)})"),
        ("python", f"{platform.python_version()}  ({system})"),
        ("numpy", np.__version__),
        ("backend", cfg["backend"] + _env("MINIGRAD_BACKEND")),
        ("ISA path", f"{cfg['isa']}  (available: {', '.join(cfg['available_isas'])})" + _env("MINIGRAD_ISA")),
        ("parallel kernels", _PARALLEL.get(cfg["parallel"], "no") + _env("MINIGRAD_THREADING")),
        ("threads", f"{cfg['num_threads']}  ({os.cpu_count()} cores)"
         + _env("MINIGRAD_NUM_THREADS") + _env("OMP_NUM_THREADS")),
    ]
    rows += _thread_pools()
    rows.append(("OPENBLAS_CORETYPE", os.environ.get("OPENBLAS_CORETYPE", "(unset)")))
    rows.append(("optional", ", ".join(_optional())))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _env(name: str) -> str:
    value = os.environ.get(name)
    return "" if value is None else f"  [{name}={value}]"


def _thread_pools() -> list[tuple[str, str]]:
    """The BLAS (and OpenMP runtimes) loaded in this process, from threadpoolctl when it is installed, else
    numpy's BLAS from its build configuration."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [("numpy BLAS", _blas_from_build_config() + "  (pip install threadpoolctl for threads and CPU "
                 "kernel)")]
    rows = []
    for pool in threadpool_info():
        name = "numpy BLAS" if pool["user_api"] == "blas" else f"{pool['user_api']} runtime"
        arch = f", {pool['architecture']} kernels" if pool.get("architecture") else ""
        desc = f"{pool['internal_api']} {pool.get('version') or ''} ({pool['num_threads']} threads{arch})"
        rows.append((name, f"{desc}  {os.path.basename(pool['filepath'])}"))
    return rows or [("numpy BLAS", _blas_from_build_config())]


def _blas_from_build_config() -> str:
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        blas = deps["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')} (numpy build configuration)"
    except (TypeError, KeyError):  # numpy < 1.26 has no mode="dicts"
        return "unknown (numpy.show_config() prints it)"


def _optional() -> list[str]:
    found = []
    for dist, purpose in (("torch", "verify"), ("matplotlib", "plots"), ("threadpoolctl", "info")):
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{dist} missing ({purpose})")
    dot = shutil.which("dot")
    found.append(f"graphviz dot {dot}" if dot else "graphviz dot missing (SVG/PNG graphs)")
    return found
