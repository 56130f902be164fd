"""pytest-benchmark setup: every case is checked once before it is timed, each case is one benchmark
group (so minigrad, numpy and torch print side by side), and the machine is recorded in the header and in
``--benchmark-json`` output."""
from __future__ import annotations

import pytest

from bench import harness
from bench.cases import Case


def pytest_report_header(config):
    return ["minigrad bench: " + line for line in harness.describe(harness.machine())]


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["minigrad_bench"] = harness.machine()


@pytest.fixture
def measure(benchmark):
    """``measure(case, impl)``: build the implementation, check its first result, then time it."""
    def run(case: Case, impl: str) -> None:
        benchmark.group = case.title
        if case.family == "matmul":  # say which numpy kernel the numpy rows are
            benchmark.group += f" [numpy: {harness.numpy_kernel_label()}]"
        benchmark.extra_info.update(case=case.id, impl=impl, threads=case.threads, work=case.work,
                                    unit=case.unit, per=case.per, per_what=case.per_what, **case.meta)
        with harness.threads(case.threads):
            fn = case.impls[impl]()
            case.check(impl, fn())
            if case.fixed_rounds:  # stateful (each call is the next TBPTT window): no calibration loops
                benchmark.pedantic(fn, rounds=case.fixed_rounds, iterations=1)
            else:
                benchmark(fn)
    return run


def params(cases: list[Case]) -> list:
    """(case, impl) parameters with ids like ``f32-256x256@256x256-1t-minigrad``: the case's id without its
    family, which the file names, except for recurrent cases, whose id starts with the layer kind
    (``lstm-f32-B32T64I64H128L1-torch``)."""
    return [pytest.param(c, impl, id=f"{c.id if c.family == 'rnn' else c.id.split('-', 1)[1]}-"
                                     f"{impl.replace(' ', '-')}")
            for c in cases for impl in c.impls]
