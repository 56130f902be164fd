"""CI smoke of the benchmark suite in ``bench/``: every benchmarked callable of every case runs once and
its result is checked (against float64/long-double numpy or float64 torch) -- no time is measured or
asserted.  The cases are the very definitions ``pytest bench/`` and ``bench/report.py`` time.

Also: minigrad's results are bitwise identical with 1 and 2 threads, and a TBPTT window's memory does not
grow with its position.  ``tests/test_bench_harness.py`` runs ``bench/report.py --smoke``.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ lives beside the package, not inside it
    sys.path.insert(0, str(ROOT))

from bench import cases, harness, report

# The full case list, except that the "late" TBPTT window comes after 30 windows instead of 200.
CASES = [c for fam in ("matmul", "tanh", "engine", "rnn") for c in cases.FAMILIES[fam]()]
CASES.append(cases.tbptt_case(late=30, rounds=1))


# JAX's steps are checked in a child process by tests/test_bench_harness.py: JAX's threads in this process
# would make the suite's later os.fork() calls warn
@pytest.mark.parametrize("case,impl", [pytest.param(c, impl, id=f"{c.id}-{impl.replace(' ', '-')}")
                                       for c in CASES for impl in c.impls if impl != "jax"])
def test_benchmarked_call_is_right(case, impl):
    # cases timed at the libraries' default thread counts (RNN, TBPTT) run on one thread here: the
    # results do not depend on it, and a busy CI machine makes idle OpenMP threads spin
    with harness.threads(case.threads or 1):
        fn = case.impls[impl]()
        case.check(impl, fn())


def _minigrad_result(case):
    with harness.threads(case.threads):
        return np.array(cases.as_numpy(case.impls["minigrad"]()()))


@pytest.mark.parametrize("one", [pytest.param(c, id=c.id) for c in CASES
                                 if c.family in ("matmul", "tanh") and c.threads == 1])
def test_minigrad_bitwise_same_with_2_threads(one):
    two = next(c for c in CASES if c.id == one.id.replace("-1t", "-2t"))
    np.testing.assert_array_equal(_minigrad_result(one), _minigrad_result(two))


def test_tbptt_window_memory_flat():
    mem = cases.tbptt_memory(late=30, windows=3)
    early, late = mem["early"], mem["late"]
    assert late["peak"] <= report.TBPTT_PEAK_FLAT * early["peak"] + report.TBPTT_RETAINED_SLACK, mem
    assert late["retained"] <= early["retained"] + report.TBPTT_RETAINED_SLACK, mem


# --smoke runs the recurrent cases on a tiny network: the cell loops, the other losses and the core-ops
# LSTM must exist there too and pass the same checks
SMOKE_RNN = cases.rnn_cases("smoke")


def test_smoke_rnn_cases_are_tiny_and_cover_cell_loops_losses_and_core_ops_lstm():
    assert {c.meta["key"] for c in SMOKE_RNN} == {cases.RNN_SMOKE_CONFIG.key}
    ids = {c.id: c for c in SMOKE_RNN}
    key = cases.RNN_SMOKE_CONFIG.key
    for kind in cases.RECURRENT:
        assert "torch-cell" in ids[f"{kind}-f32-{key}"].impls
    for kind in ("lstm", "gru"):
        for loss in cases.LOSS_VARIANTS:
            assert ids[f"{kind}-f32-{key}-{loss}"].meta["loss"] == loss
    assert {"minigrad core ops", "torch", "torch core ops", "minigrad"} <= set(ids[f"corelstm-f32-{key}"].impls)


@pytest.mark.parametrize("case,impl", [pytest.param(c, impl, id=f"{c.id}-{impl.replace(' ', '-')}")
                                       for c in SMOKE_RNN for impl in c.impls if impl != "jax"])
def test_smoke_size_rnn_call_is_right(case, impl):
    with harness.threads(1):
        case.check(impl, case.impls[impl]()())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_loss_variant_is_checked_against_its_own_loss(kind):
    # each loss has its own float64 reference: a step under another loss fails the check
    cfg = cases.RNN_SMOKE_CONFIG
    with harness.threads(1):
        mse = cases.rnn_case(cfg, np.float64, kind, "mse")
        result = mse.impls["minigrad"]()()
        mse.check("minigrad", result)
        for other in ("wsum", "sum"):
            with pytest.raises(AssertionError, match="loss"):
                cases.rnn_case(cfg, np.float64, kind, other).check("minigrad", result)


def test_core_ops_lstm_wants_one_unidirectional_layer():
    with pytest.raises(ValueError, match="one unidirectional layer"):
        cases._core_ops_lstm_step("minigrad", cases.RNN_CONFIGS[1], np.float32)
