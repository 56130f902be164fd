#!/usr/bin/env bash
# Run the kernel and op tests against kernels built with AddressSanitizer + UndefinedBehaviorSanitizer, on
# every ISA path this CPU has (avx512, avx2, portable).  Fails on any sanitizer report or test failure.
# With --thread (or MINIGRAD_SANITIZE=thread): build the kernels with ThreadSanitizer instead and run the
# tests that use the thread pool from several threads at once (2+ pool threads, concurrent callers, thread
# count and path changes, fork, threadpoolctl, a late helper).  That build has no OpenMP runtime (setup.py
# leaves out -fopenmp): GCC's libgomp is not built with ThreadSanitizer, which cannot see its hand-offs and
# would report each parallel region as a race, so only the pool is checked there.  The AddressSanitizer run
# covers both runtimes.
#
# The sanitized build happens in a scratch copy of the source tree, so the normal in-place build in the repo
# is never touched.  Usage: scripts/sanitize.sh [--thread] [extra pytest arguments]
set -euo pipefail

mode="${MINIGRAD_SANITIZE:-address}"
if [ "${1:-}" = "--thread" ]; then
    mode=thread
    shift
fi
case "$mode" in
    thread) sanitizer=ThreadSanitizer runtime=libtsan.so ;;
    address | 1) mode=address sanitizer=AddressSanitizer runtime=libasan.so ;;
    *) echo "sanitize: MINIGRAD_SANITIZE must be address or thread, got '$mode'" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/minigrad-sanitize.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS

# Copy the tree with the repo's build products (timestamps kept, so up-to-date Cython modules are reused) but
# without the kernels module and its objects, which are therefore rebuilt with the sanitizers.  A core module
# whose sources changed since the repo's last build is rebuilt too, sanitized as well.
tar -C "$repo" --exclude=./.git --exclude='./.venv*' --exclude=__pycache__ --exclude=.hypothesis \
    --exclude='./minigrad/_kernels.*.so' --exclude='./build/lib*/minigrad/_kernels.*.so' \
    --exclude='./build/temp*/_ext' -cf - . | tar -C "$work" -xf -
cd "$work"
# setuptools compares against build/lib, which an editable pip install does not leave in the tree: seed it
# with the in-place core modules (times kept) so that they count as built.
lib="$("$python" -c 'from setuptools.dist import Distribution
build = Distribution().get_command_obj("build")
build.finalize_options()
print(build.build_platlib)')"
find minigrad -name '*.so' ! -name '_kernels.*' | while read -r so; do
    if [ ! -e "$lib/$so" ]; then
        mkdir -p "$lib/$(dirname "$so")"
        cp -p "$so" "$lib/$so"
    fi
done
echo "sanitize: building in $work ($sanitizer)"
MINIGRAD_SANITIZE="$mode" "$python" setup.py -q build_ext --inplace -j "$(nproc)" >build.log 2>&1 \
    || { cat build.log; exit 1; }
echo "sanitize: built in $((SECONDS - start)) s"
if ! ldd minigrad/_kernels.*.so | grep "${runtime%.so}" >/dev/null; then
    echo "sanitize: the kernels module was not built with $sanitizer" >&2
    exit 1
fi

# Python itself is not built with the sanitizer, so its runtime must be loaded first.
cc="$("$python" -c 'import sysconfig; print((sysconfig.get_config_var("CC") or "cc").split()[0])')"
lib="$("$cc" -print-file-name="$runtime")"
if [ ! -f "$lib" ]; then
    echo "sanitize: $cc has no $runtime (Debian: apt-get install libasan8 libtsan2)" >&2
    exit 1
fi
export LD_PRELOAD="$lib"
# Python's allocations are deliberately never freed at exit, hence no leak checking.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# ThreadSanitizer sees the synchronisation of uninstrumented code only through the pthread calls it
# intercepts.  OpenBLAS's threads hand work back through spin flags it cannot see, so a buffer that numpy's
# BLAS wrote (memset, which it does intercept) on an OpenBLAS thread and minigrad's kernels write later
# looks like a race: numpy's BLAS runs on one thread here.  The fork tests fork a process with threads,
# which ThreadSanitizer refuses unless die_after_fork=0.  No report is suppressed.
export TSAN_OPTIONS="halt_on_error=1:die_after_fork=0:second_deadlock_stack=1"
if [ "$mode" = thread ]; then
    export OPENBLAS_NUM_THREADS=1
fi
isas="$("$python" -c 'from minigrad import _backend; print(" ".join(_backend.available_isas()))')"

status=0
# --capture=sys leaves file descriptor 2 to the sanitizers: a report written there just before they end the
# process would otherwise be lost with pytest's captured output.
run_tests() {
    local what="$1" log="$work/test.log"
    shift
    echo "sanitize: $what"
    env "$@" "$python" -m pytest -q -p no:cacheprovider --capture=sys "${pytest_args[@]}" 2>&1 \
        | tee "$log" || status=1
    # Any report fails the run, also one that did not end the process (a recoverable check).
    if grep -E "(ERROR|WARNING): (AddressSanitizer|ThreadSanitizer)|runtime error:" "$log" >/dev/null; then
        echo "sanitize: sanitizer report in $what" >&2
        status=1
    fi
}

if [ "$mode" = thread ]; then
    # Every test that runs kernels on 2+ threads or from several threads at once, on every ISA path (the
    # kernel tests' fixtures force each path); the subprocesses they start inherit the sanitizer.
    pytest_args=(tests/test_threadpool.py tests/test_kernels.py tests/test_allocator.py
                 tests/test_sigmoid_kernel.py tests/test_gate_kernels.py tests/test_gated_seq_kernels.py
                 tests/test_arith_kernel.py -k "thread or concurrent or fork or pool" "$@")
    run_tests "the thread pool's tests (every ISA path)"
    # torch's own libgomp is not instrumented either: its tests stay out.
    pytest_args=(tests/test_threading_backends.py -k "not torch" "$@")
    run_tests "the threading runtimes' tests (the pool)"
    echo "sanitize: $( [ $status -eq 0 ] && echo clean || echo FAILED ) in $((SECONDS - start)) s"
    exit $status
fi

# The kernel and op tests run without the caching allocator (MINIGRAD_CACHE_MB=0), so that every numpy
# buffer is its own malloc block whose exact bounds AddressSanitizer checks; the allocator's own tests run
# with it, under the sanitizers too.
# The kernel tests force every ISA path this CPU has through their own fixtures: one run covers them all.
pytest_args=(tests/test_kernels.py tests/test_threadpool.py tests/test_sigmoid_kernel.py tests/test_gate_kernels.py
             tests/test_gated_seq_kernels.py tests/test_arith_kernel.py "$@")
run_tests "the kernel, sigmoid, gate, gated sequence, arith and thread pool tests (every ISA path)" MINIGRAD_CACHE_MB=0
# Both runtimes; torch, whose libraries are not built with the sanitizer, stays out.
pytest_args=(tests/test_threading_backends.py -k "not torch" "$@")
run_tests "tests/test_threading_backends.py (the pool and OpenMP)" MINIGRAD_CACHE_MB=0
# The op tests use whichever path is selected at import, so they run once per path.
pytest_args=(tests/test_ops.py "$@")
for isa in $isas; do
    run_tests "tests/test_ops.py with MINIGRAD_ISA=$isa" MINIGRAD_ISA="$isa" MINIGRAD_CACHE_MB=0
done
pytest_args=(tests/test_allocator.py "$@")
run_tests "tests/test_allocator.py (the caching allocator)"
echo "sanitize: $( [ $status -eq 0 ] && echo clean || echo FAILED ) in $((SECONDS - start)) s"
exit $status
