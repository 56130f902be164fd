"""Build minigrad's compiled parts.

Two kinds of extension modules are built:

* ``minigrad._kernels`` -- the C kernels in ``_ext/*.c`` behind their Cython wrapper ``_ext/_kernels.pyx``.
  The kernels are compiled at the baseline ISA; faster variants carry per-function ``target`` attributes and
  are chosen at import time, so no ``-march=native`` is ever needed.
* the Cython core -- every ``minigrad/**/*.pyx`` (tensor, autograd engine, ops).

Parallel kernels run on minigrad's own POSIX-threads pool (``_ext/cpu.c``) or on OpenMP
(``_ext/parallel_omp.c``, chosen at import by ``MINIGRAD_THREADING``).  The kernels module is built with
``-fopenmp`` when the compiler takes it, except under ThreadSanitizer (libgomp is not instrumented, so TSan
would report its hand-offs as races) or with ``MINIGRAD_OPENMP=0``: then only the pool is available.
``MINIGRAD_SANITIZE=1`` (or ``address``) builds the kernels with AddressSanitizer and
UndefinedBehaviorSanitizer, ``MINIGRAD_SANITIZE=thread`` with ThreadSanitizer (scripts/sanitize.sh runs both).
"""
import hashlib
import os
import sys
import tempfile
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

HERE = os.path.dirname(os.path.abspath(__file__))


def source_files():
    """Every file whose change requires a rebuild; minigrad._backend hashes the same list."""
    pats = ["_ext/*.c", "_ext/*.h", "_ext/*.pyx", "_ext/*.pxd", "minigrad/**/*.pyx", "minigrad/**/*.pxd"]
    files = []
    for pat in pats:
        files += glob(os.path.join(HERE, pat), recursive=True)
    # Cython writes _ext/_kernels.c after this hash is taken; hashing it would make every build look stale.
    generated = os.path.join(HERE, "_ext", "_kernels.c")
    return sorted(f for f in files if f != generated)


def source_hash():
    h = hashlib.sha256()
    for path in source_files():
        h.update(os.path.relpath(path, HERE).replace(os.sep, "/").encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


class BuildExt(build_ext):
    def build_extensions(self):
        unix = self.compiler.compiler_type != "msvc"
        base = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-pthread"] if unix else ["/O2"]
        link = ["-pthread"] if unix else []
        sanitize = os.environ.get("MINIGRAD_SANITIZE", "0").strip().lower()
        if sanitize not in ("", "0", "1", "address", "thread"):
            sys.exit(f"MINIGRAD_SANITIZE must be 0, 1 (or address) or thread, got {sanitize!r}")
        if unix and sanitize == "thread":
            base = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=thread", "-pthread"]
            link = link + ["-fsanitize=thread"]
        elif unix and sanitize in ("1", "address"):
            # -fno-wrapv: Python's own -fwrapv would hide signed overflow from UBSan
            base = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-fno-wrapv", "-pthread"]
            link = link + ["-fsanitize=address,undefined"]
        openmp = os.environ.get("MINIGRAD_OPENMP", "1").strip().lower()
        if openmp not in ("", "0", "1"):
            sys.exit(f"MINIGRAD_OPENMP must be 0 or 1, got {openmp!r}")
        openmp = unix and openmp != "0" and sanitize != "thread" and self.takes_openmp()
        for ext in self.extensions:
            ext.extra_compile_args = list(base)
            ext.extra_link_args = list(link)
            if not unix:
                continue
            if openmp and ext.name == "minigrad._kernels":
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
            # Cython's generated code trips a few harmless warnings; keep the build log readable.
            ext.extra_compile_args += ["-Wno-unused-function", "-Wno-unreachable-code"]
        super().build_extensions()

    def takes_openmp(self):
        """Whether the compiler builds and links a program with -fopenmp (clang may lack libomp)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "omp.c")
            with open(src, "w") as f:
                f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
            try:
                objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
                self.compiler.link_executable(objs, os.path.join(tmp, "omp"), extra_postargs=["-fopenmp"])
            except (CompileError, LinkError):
                return False
        return True


def hash_stamp(digest):
    """A file whose mtime changes exactly when the source hash does.

    setuptools rebuilds an extension when a dependency is newer than it, but not when only a macro changed;
    listing this stamp among the kernels' dependencies makes a new hash always reach the compiled module.
    """
    stamp = os.path.join(HERE, "build", "source-hash.txt")
    old = open(stamp).read() if os.path.exists(stamp) else None
    if old != digest:
        os.makedirs(os.path.dirname(stamp), exist_ok=True)
        with open(stamp, "w") as f:
            f.write(digest)
    return stamp


def extensions():
    digest = source_hash()
    core_macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    # only the kernels module embeds the source hash, so editing one .pyx rebuilds that module and this one
    macros = core_macros + [("MINIGRAD_SOURCE_HASH", '"%s"' % digest)]
    include = [numpy.get_include(), os.path.join(HERE, "_ext")]
    kernel_c = sorted(p for p in glob("_ext/*.c") if not p.endswith("_kernels.c"))
    # depends: a change to any hashed file must rebuild the module that embeds the hash.
    exts = [Extension("minigrad._kernels", ["_ext/_kernels.pyx"] + kernel_c,
                      include_dirs=include, define_macros=macros,
                      depends=source_files() + [hash_stamp(digest)])]
    for pyx in sorted(glob("minigrad/**/*.pyx", recursive=True)):
        name = pyx[:-4].replace("/", ".").replace(os.sep, ".")
        exts.append(Extension(name, [pyx], include_dirs=include, define_macros=core_macros))
    # _ext on Cython's include path too: a module may cimport the kernels' C declarations (_ext/kernels.pxd)
    return cythonize(exts, language_level=3, nthreads=os.cpu_count() or 1, include_path=[os.path.join(HERE, "_ext")],
                     compiler_directives={"embedsignature": True})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
