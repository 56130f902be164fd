"""minigrad's thread pool: several Python threads calling kernels while the pool starts, grows or changes its
thread count or path; threadpoolctl's view and limits; the thread-count environment variables.

scripts/sanitize.sh --thread runs these under ThreadSanitizer (with the threaded kernel tests): a data race in
the pool (_ext/cpu.c) fails them there, also in the subprocesses, which inherit the sanitizer."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from minigrad import _backend

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_c = pytest.mark.skipif(_backend.name != "c", reason="the C backend's thread pool (MINIGRAD_BACKEND=c)")
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                                reason="counts threads in /proc/self/task (Linux only)")


def run_python(code, **env):
    """Run code in a fresh interpreter with the MINIGRAD_* variables replaced by env."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MINIGRAD_") and k != "OMP_NUM_THREADS"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, cwd=REPO,
                          timeout=300, check=False)


@pytest.fixture
def isa():
    previous = _backend.isa()
    yield _backend.set_isa
    _backend.set_isa(previous)


def run_together(work, count):
    """Run work() on count threads started at once; re-raise the first exception any of them raised."""
    barrier = threading.Barrier(count)
    errors = []

    def target():
        try:
            barrier.wait()
            work()
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread below
            errors.append(e)

    workers = [threading.Thread(target=target) for _ in range(count)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


# ---------------------------------------------------------------- the pool under concurrent callers

# In a fresh process the pool has no thread yet: four Python threads start it at once, with large calls
# (which create and wake pool threads) and medium ones (which only ask how many pool threads are awake).
POOL_START = """
import threading
import numpy as np
from minigrad import _backend as b
rng = np.random.default_rng(0)
a, w = rng.standard_normal((300, 300)), rng.standard_normal((300, 300))
s, t = rng.standard_normal((40, 100)), rng.standard_normal((100, 130))
x = rng.uniform(-5, 5, 300_001).astype(np.float32)
# sizes that are shared only with pool threads already awake (between the kernels' share and wake sizes)
x32, x64, r = x[:40_000].copy(), rng.uniform(-5, 5, 12_000), x[::-1][:100_000].copy()
calls = [lambda: b.matmul(a, w), lambda: b.matmul(s, t), lambda: b.tanh(x), lambda: b.tanh(x32),
         lambda: b.tanh(x64), lambda: b.sub_sqsum(x[:100_000], r)[1]]
b.set_num_threads(1)
want = [f() for f in calls]
b.set_num_threads(3)
barrier = threading.Barrier(4)
bad = []
def work(k):
    barrier.wait()
    for i in range(12):
        j = (i + k) % len(calls)
        if not np.array_equal(calls[j](), want[j]):
            bad.append(j)
workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t_ in workers:
    t_.start()
for t_ in workers:
    t_.join()
assert np.allclose(want[0], a @ w) and np.allclose(want[2], np.tanh(x.astype(np.float64)), atol=1e-6)
print("mismatches", sorted(set(bad)))
"""


@needs_c
def test_pool_started_by_concurrent_callers():
    """Results of 3 threads are the bits of 1 thread (and near numpy's) while four callers start the pool."""
    r = run_python(POOL_START)
    assert r.returncode == 0 and r.stdout.split() == ["mismatches", "[]"], r.stdout + r.stderr


@needs_c
def test_thread_count_and_path_change_while_kernels_run(threads, isa, rng):
    """One thread switches the thread count and the kernel path while three others call kernels: each call
    gives the bits of one path (the one it started on) and agrees with numpy."""
    paths = _backend.available_isas()
    a, w = rng.standard_normal((260, 200)), rng.standard_normal((200, 300))
    x = rng.uniform(-5, 5, 300_001).astype(np.float32)
    threads(1)
    want = {}
    for p in paths:
        isa(p)
        want[p] = (_backend.matmul(a, w), _backend.tanh(x))
    np.testing.assert_allclose(want[paths[0]][0], a @ w, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(want[paths[0]][1], np.tanh(x.astype(np.float64)), atol=1e-6)
    done = threading.Event()

    def switch():
        i = 0
        while not done.is_set():
            threads(1 + i % 3)
            isa(paths[i % len(paths)])
            i += 1

    def work():
        for _ in range(6):
            mm, th = _backend.matmul(a, w), _backend.tanh(x)
            assert any(np.array_equal(mm, want[p][0]) for p in paths)
            assert any(np.array_equal(th, want[p][1]) for p in paths)

    switcher = threading.Thread(target=switch)
    switcher.start()
    try:
        run_together(work, 3)
    finally:
        done.set()
        switcher.join()


@needs_c
def test_pool_grows_while_other_threads_call(threads, rng):
    """Raising the thread count starts new pool threads; small calls elsewhere read the pool size meanwhile."""
    big = rng.standard_normal((400, 400))
    small_a, small_b = rng.standard_normal((40, 100)), rng.standard_normal((100, 130))
    threads(1)
    want_big, want_small = _backend.matmul(big, big), _backend.matmul(small_a, small_b)
    np.testing.assert_allclose(want_big, big @ big, rtol=1e-10, atol=1e-9)
    counts = iter(range(2, 8))

    def work():
        for _ in range(4):
            assert np.array_equal(_backend.matmul(small_a, small_b), want_small)
            assert np.array_equal(_backend.matmul(big, big), want_big)

    def grow_then_work():
        threads(next(counts))
        work()

    run_together(grow_then_work, 4)


# ---------------------------------------------------------------- threadpoolctl

@pytest.fixture
def threadpoolctl():
    return pytest.importorskip("threadpoolctl", reason="needs threadpoolctl: pip install -e '.[test]'")


def minigrad_pools(threadpoolctl):
    return [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "minigrad"]


@needs_c
def test_threadpool_info_lists_the_pool(threadpoolctl, threads):
    threads(3)
    import minigrad
    (pool,) = minigrad_pools(threadpoolctl)
    assert pool["internal_api"] == "minigrad" and pool["num_threads"] == 3
    assert pool["version"] == minigrad.__version__
    assert pool["filepath"] == os.path.realpath(_backend._impl.__file__)


@needs_c
def test_threadpool_limits_sets_and_restores(threadpoolctl, threads):
    threads(3)
    with threadpoolctl.threadpool_limits(1):
        assert _backend.get_num_threads() == 1
    assert _backend.get_num_threads() == 3
    with threadpoolctl.threadpool_limits(limits={"minigrad": 2}):
        assert _backend.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _backend.get_num_threads() == 3
    with pytest.raises(ValueError, match="set_num_threads"):
        threadpoolctl.threadpool_limits(limits={"minigrad": 0})
    assert _backend.get_num_threads() == 3


LIMITED = """
import os
import numpy as np
from threadpoolctl import threadpool_limits
from minigrad import _backend as b
tasks = lambda: len(os.listdir("/proc/self/task"))
a = np.random.default_rng(0).standard_normal((600, 600))
before = tasks()
with threadpool_limits(limits={"minigrad": 1}):
    limited = b.matmul(a, a)
    during = tasks()
after_limit = b.matmul(a, a)
print(before, during, tasks(), b.get_num_threads(), np.array_equal(limited, after_limit))
"""


@needs_c
@needs_proc
def test_threadpool_limits_stops_the_pool_threads(threadpoolctl):
    """Under threadpool_limits the kernels start no pool thread; after it, the pool is used again."""
    r = run_python(LIMITED, MINIGRAD_NUM_THREADS="3")
    assert r.returncode == 0, r.stderr
    before, during, after, nt, same = r.stdout.split()
    # (>=: a sanitizer runtime may start a thread of its own)
    assert during == before and int(after) >= int(before) + 2 and nt == "3" and same == "True", r.stdout


def test_optional_dependency(threadpoolctl):
    """Without threadpoolctl minigrad imports and runs; with the numpy backend no pool is listed."""
    r = run_python("import sys; sys.modules['threadpoolctl'] = None\n"
                   "import numpy as np, minigrad\n"
                   "print(minigrad.matmul(minigrad.ones(2, 3), minigrad.ones(3, 2)).numpy().sum())")
    assert r.returncode == 0 and r.stdout.split() == ["12.0"], r.stderr
    r = run_python("import minigrad, threadpoolctl\n"
                   "print([i['user_api'] for i in threadpoolctl.threadpool_info()].count('minigrad'))",
                   MINIGRAD_BACKEND="numpy")
    assert r.returncode == 0 and r.stdout.split() == ["0"], r.stderr


# ---------------------------------------------------------------- thread counts from the environment

COUNT = "import minigrad._backend as b; print(b.get_num_threads())"


@needs_c
def test_absurd_thread_count_is_clamped_with_a_warning():
    r = run_python(COUNT, MINIGRAD_NUM_THREADS="100000")
    assert r.returncode == 0 and r.stdout.split() == [str(_backend.MAX_THREADS)], r.stderr
    assert "RuntimeWarning: MINIGRAD_NUM_THREADS=100000 is more than minigrad's maximum of 64" in r.stderr
    r = run_python(COUNT, OMP_NUM_THREADS="100000")
    assert r.returncode == 0 and r.stdout.split() == [str(_backend.MAX_THREADS)], r.stderr
    r = run_python(COUNT, MINIGRAD_NUM_THREADS="64")
    assert r.returncode == 0 and r.stdout.split() == ["64"] and "Warning" not in r.stderr, r.stderr


@needs_c
@needs_proc
def test_absurd_thread_count_starts_at_most_the_maximum():
    """The clamped count is what the pool uses: a large product starts at most MAX_THREADS - 1 threads.  The
    pool's threads are counted by their name, so that a thread another runtime starts meanwhile (a sanitizer's
    own, started with the first thread the process creates) is not taken for one of them."""
    code = ("import os, warnings\n"
            "warnings.simplefilter('ignore')\n"
            "import numpy as np, minigrad._backend as b\n"
            "def pool_threads():\n"
            "    names = []\n"
            "    for t in os.listdir('/proc/self/task'):\n"
            "        try:\n"
            "            with open(f'/proc/self/task/{t}/comm') as f:\n"
            "                names.append(f.read().strip())\n"
            "        except FileNotFoundError:\n"
            "            pass\n"
            "    return names.count('minigrad-pool')\n"
            "before = pool_threads()\n"
            "a = np.ones((2000, 700))\n"
            "b.matmul(a, a.T)\n"
            "print(pool_threads() - before)")
    r = run_python(code, MINIGRAD_NUM_THREADS="100000")
    assert r.returncode == 0 and 1 <= int(r.stdout) <= _backend.MAX_THREADS - 1, r.stdout + r.stderr


@needs_c
def test_max_threads_matches_the_kernels(threads):
    threads(_backend.MAX_THREADS + 10)
    assert _backend.get_num_threads() == (_backend.MAX_THREADS if _backend.openmp() else 1)


def test_cli_runs_with_an_absurd_thread_count():
    r = subprocess.run([sys.executable, "-m", "minigrad", "info"], capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, MINIGRAD_NUM_THREADS="100000"), timeout=300, check=False)
    assert r.returncode == 0 and "MINIGRAD_NUM_THREADS=100000" in r.stderr, r.stderr


PLACEMENT = r"""
import os, time
import numpy as np
from minigrad import _backend
_backend.set_num_threads(2)
a = np.ones((512, 512), np.float32)
before = set(os.listdir("/proc/self/task"))
_backend.matmul(a, a)                   # starts the helper (pool or OpenMP team) with both CPUs allowed
started = set(os.listdir("/proc/self/task")) - before

def helpers():
    return {t: os.sched_getaffinity(int(t)) for t in started}

def settled(want):
    # the helper sets its mask when it joins a job, which may be after the caller returned; 2 threads: one
    # helper (a sanitizer may have started a thread of its own meanwhile, which keeps its mask)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum(m == want for m in helpers().values()) == 1:
            return True
        time.sleep(0.01)
    print("helpers", helpers(), "want", want)
    return False

results = []
for cpu, other in ((0, 1), (1, 0), (0, 1)):
    os.sched_setaffinity(0, {cpu})      # this thread only: the helper keeps the mask it started with
    for _ in range(3):
        time.sleep(0.05)                # the helper goes to sleep between products
        np.testing.assert_array_equal(_backend.matmul(a, a), np.full((512, 512), 512, np.float32))
    results.append(settled({other}))
print(all(results))
"""


@needs_c
@needs_proc
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or not {0, 1} <= os.sched_getaffinity(0),
                    reason="needs CPUs 0 and 1 (Linux affinity)")
@pytest.mark.parametrize("kind", _backend.available_threadings())
def test_helper_leaves_the_callers_cpu(kind):
    """Woken on the caller's own CPU (a virtual machine's kernel does that when the other vCPU is idle), the
    pool's helper used to stay out of the job and sleep again, so every product after an idle moment ran on
    one thread, and libgomp's waited for the caller's time slice.  Now each keeps its affinity to the other
    CPUs: wherever the caller runs, the helper's mask leaves that CPU out, and follows when the caller
    moves."""
    r = run_python(PLACEMENT, MINIGRAD_THREADING=kind)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "True", r.stdout
