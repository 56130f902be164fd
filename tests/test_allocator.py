"""The caching allocator behind numpy's array data (_ext/alloc.c): numpy semantics are unchanged -- zeros
are zero on a reused block, resizes keep their contents, arrays cross threads -- and blocks are reused."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad import _backend

needs_c = pytest.mark.skipif(_backend.name != "c", reason="the caching allocator is part of the C backend")


def _run(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


@needs_c
def test_installed_on_import_and_reported():
    stats = mg.memory_stats()
    assert stats["enabled"] is True
    assert mg.config()["caching_allocator"] is True
    assert stats["limit_bytes"] == 512 << 20
    assert set(stats) == {"enabled", "idle_bytes", "idle_blocks", "limit_bytes", "hits", "misses"}


@needs_c
def test_a_freed_block_is_reused():
    mg.empty_cache()
    before = mg.memory_stats()
    a = np.ones(300_000)                    # 2.4 MB: a cached size
    del a
    assert mg.memory_stats()["idle_blocks"] == before["idle_blocks"] + 1
    b = np.empty(299_000)                   # the same size class
    after = mg.memory_stats()
    assert after["hits"] == before["hits"] + 1
    assert after["idle_blocks"] == before["idle_blocks"]
    del b


@needs_c
@pytest.mark.parametrize("n", [1, 1000, 2048, 70_000, 1_000_003])
def test_zeros_after_a_dirty_block_of_the_same_size(n):
    for _ in range(3):
        a = np.full(n, 7.5)
        del a
        z = np.zeros(n)
        assert z.shape == (n,) and not z.any()


@needs_c
@pytest.mark.parametrize("old,new", [(10, 20), (10, 100_000), (100_000, 10), (100_000, 1_000_000),
                                     (1_000_000, 100_000), (100_000, 100_100)])
def test_resize_keeps_the_contents(old, new):
    a = np.arange(old, dtype=np.float64)
    a.resize(new, refcheck=False)           # numpy reallocs the buffer
    keep = min(old, new)
    np.testing.assert_array_equal(a[:keep], np.arange(keep, dtype=np.float64))
    if new > old:
        assert not a[old:].any()            # numpy zero-fills the grown part


@needs_c
def test_fromiter_growth_matches_a_list():
    n = 200_000
    a = np.fromiter((i * 0.5 for i in range(n)), dtype=np.float64)
    np.testing.assert_array_equal(a, np.array([i * 0.5 for i in range(n)]))


@needs_c
def test_arrays_cross_threads():
    made = []

    def worker():
        made.append(np.ones(500_000))       # numpy's default allocator in this thread's context

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    theirs = made.pop()
    mine = np.ones(500_000)
    np.testing.assert_array_equal(theirs, mine)
    del theirs, mine                        # each block goes back to the allocator that made it


@needs_c
def test_limit_bounds_the_idle_bytes():
    try:
        mg.set_cache_limit(1 << 20)
        assert mg.memory_stats()["idle_bytes"] <= 1 << 20
        arrays = [np.ones(100_000) for _ in range(8)]   # 8 x 800 KB
        del arrays
        assert mg.memory_stats()["idle_bytes"] <= 1 << 20
        mg.set_cache_limit(0)
        assert mg.memory_stats()["idle_bytes"] == 0
        a = np.ones(100_000)
        del a
        assert mg.memory_stats()["idle_blocks"] == 0
    finally:
        mg.set_cache_limit(512 << 20)


@needs_c
def test_empty_cache_frees_the_idle_blocks():
    a = np.ones(1_000_000)
    del a
    assert mg.memory_stats()["idle_bytes"] > 0
    mg.empty_cache()
    assert mg.memory_stats()["idle_bytes"] == 0
    assert mg.memory_stats()["idle_blocks"] == 0


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError),
                                     (None, TypeError)])
def test_set_cache_limit_rejects_bad_values(bad, exc):
    with pytest.raises(exc, match="set_cache_limit"):
        mg.set_cache_limit(bad)


def test_env_zero_leaves_numpys_allocator():
    code = ("import minigrad as mg, numpy as np\n"
            "from numpy._core.multiarray import get_handler_name\n"
            "print(mg.memory_stats()['enabled'], get_handler_name())")
    out = _run(code, MINIGRAD_CACHE_MB="0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "default_allocator"]


@pytest.mark.parametrize("bad", ["-1", "lots", "1.5"])
def test_env_rejects_bad_values(bad):
    out = _run("import minigrad", MINIGRAD_CACHE_MB=bad)
    assert out.returncode != 0
    assert "MINIGRAD_CACHE_MB must be a non-negative integer" in out.stderr


@needs_c
def test_env_sets_the_limit():
    out = _run("import minigrad as mg; print(mg.memory_stats()['limit_bytes'])", MINIGRAD_CACHE_MB="64")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 64 << 20


@needs_c
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_another_thread_allocates():
    """The child of a fork can allocate and free even if a thread of the parent was inside the allocator."""
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            a = np.ones(20_000)
            del a

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(20):
            pid = os.fork()
            if pid == 0:  # child: allocate, free, exit without running Python's cleanup
                ok = np.ones(50_000).sum() == 50_000
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        stop.set()
        t.join()
