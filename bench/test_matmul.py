"""matmul, float32/float64, square n = 64/256/1024 and the RNN shapes (also with the right operand a
transposed view), 1 and 2 threads: minigrad vs numpy vs torch.  ``test_matmul_openblas_skylakex`` repeats
the minigrad and numpy rows in a child process whose OpenBLAS is forced to its AVX-512 (SkylakeX) kernels."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import harness
from bench.cases import matmul_cases
from bench.conftest import params


@pytest.mark.parametrize("case,impl", params(matmul_cases()))
def test_matmul(measure, case, impl):
    measure(case, impl)


def test_matmul_openblas_skylakex(request, capsys):
    """numpy with OPENBLAS_CORETYPE=SkylakeX, set only in a child run (never in this process): its
    pytest-benchmark tables are printed here."""
    opt = request.config.getoption
    if opt("benchmark_skip") or opt("benchmark_disable"):
        pytest.skip("benchmarks are skipped or disabled in this run")
    if os.environ.get("OPENBLAS_CORETYPE") == "SkylakeX":
        pytest.skip("this run's numpy already runs OpenBLAS's SkylakeX kernels (the child run itself)")
    if "avx512f" not in harness.cpu_flags():
        pytest.skip("no AVX-512 on this CPU: OpenBLAS's SkylakeX kernels cannot run")
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "pytest", str(Path(__file__).relative_to(root)), "-q",
               "-p", "no:cacheprovider", "-k", "test_matmul and (minigrad or numpy)",
               f"--benchmark-max-time={opt('benchmark_max_time')}",
               f"--benchmark-min-rounds={opt('benchmark_min_rounds')}"]
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX")
    proc = subprocess.run(command, check=False, cwd=root, env=env, capture_output=True, text=True)
    with capsys.disabled():
        print("\n---- child run with OPENBLAS_CORETYPE=SkylakeX: " + " ".join(command))
        print(proc.stdout[-200_000:], proc.stderr[-5000:])
    assert proc.returncode == 0, "the SkylakeX child run failed (output above)"
