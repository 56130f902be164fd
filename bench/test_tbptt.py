"""Truncated BPTT: the time of a window early in a run vs after many windows, and the memory a window
needs at either position."""
import pytest

from bench.cases import TBPTT_LATE, tbptt_cases, tbptt_memory
from bench.conftest import params


@pytest.mark.parametrize("case,impl", params(tbptt_cases()))
def test_tbptt_window(measure, case, impl):
    measure(case, impl)


def test_tbptt_memory_flat(capsys):
    """Peak memory of a window (tracemalloc) is the same early and late, and a window leaves nothing behind
    (a graph kept alive across the detach would grow both)."""
    mem = tbptt_memory(late=TBPTT_LATE)
    early, late = mem["early"], mem["late"]
    with capsys.disabled():
        print(f"\nTBPTT window memory: early peak {early['peak'] / 1024:.0f} KiB, retained "
              f"{early['retained'] / 1024:.1f} KiB; after {TBPTT_LATE} windows peak {late['peak'] / 1024:.0f} "
              f"KiB, retained {late['retained'] / 1024:.1f} KiB; RSS {early['rss'] >> 20} -> {late['rss'] >> 20} MiB")
    assert late["peak"] <= 1.10 * early["peak"] + 65536
    assert late["retained"] <= early["retained"] + 65536
