"""Checkpoints and the file system: ``save`` writes through symbolic links, keeps a file's permissions and
refuses anything that is not a regular file before writing; ``load`` checks every size a file declares before
allocating for it, and says "out of memory" (naming the array) when a valid checkpoint does not fit.

Where torch defines the behaviour (``torch.save`` opens the path for writing: it follows links and keeps the
file's mode) the same setup is run through torch as the oracle."""
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.serialization import CheckpointError

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
posix_only = pytest.mark.skipif(os.name != "posix", reason="symbolic links, FIFOs and modes as on POSIX")


def _ckpt(value):
    return {"w": mg.tensor(np.full(3, float(value)))}


def _w(path):
    return mg.load(path)["w"].numpy()


def _listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


# ---- save through symbolic links --------------------------------------------------------------------------
@posix_only
def test_save_through_a_symlink_updates_its_target_and_keeps_the_link_like_torch(tmp_path):
    torch = pytest.importorskip("torch")
    for lib in ("torch", "minigrad"):
        d = tmp_path / lib
        d.mkdir()
        (d / "latest.npz").symlink_to("ckpt_100.npz")
        if lib == "torch":
            torch.save({"w": torch.zeros(3)}, d / "ckpt_100.npz")
            torch.save({"w": torch.ones(3)}, d / "latest.npz")
        else:
            mg.save(_ckpt(0), d / "ckpt_100.npz")
            mg.save(_ckpt(1), d / "latest.npz")
        assert (d / "latest.npz").is_symlink() and os.readlink(d / "latest.npz") == "ckpt_100.npz", lib
        assert (d / "ckpt_100.npz").is_file() and not (d / "ckpt_100.npz").is_symlink(), lib
        assert _listing(d) == ["ckpt_100.npz", "latest.npz"], lib
    np.testing.assert_array_equal(_w(tmp_path / "minigrad" / "ckpt_100.npz"),
                                  torch.load(tmp_path / "torch" / "ckpt_100.npz")["w"].numpy())


@posix_only
def test_save_follows_a_chain_of_links_and_writes_in_the_targets_directory(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "runs" / "ckpt_7.npz"
    mg.save(_ckpt(0), target)
    (tmp_path / "runs" / "best.npz").symlink_to("ckpt_7.npz")
    (tmp_path / "links" / "latest.npz").symlink_to(tmp_path / "runs" / "best.npz")
    (tmp_path / "links" / "a.npz").symlink_to("latest.npz")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((src, dst)), real_replace(src, dst)))
    mg.save(_ckpt(5), tmp_path / "links" / "a.npz")
    (src, dst), = replaced
    # atomic: a temporary file renamed over the final target, in the target's own directory
    assert Path(dst) == target.resolve() and Path(src).parent == target.resolve().parent
    np.testing.assert_array_equal(_w(target), np.full(3, 5.0))
    assert [p.is_symlink() for p in (tmp_path / "links" / "a.npz", tmp_path / "links" / "latest.npz",
                                     tmp_path / "runs" / "best.npz")] == [True, True, True]
    assert _listing(tmp_path / "runs") == ["best.npz", "ckpt_7.npz"]
    assert _listing(tmp_path / "links") == ["a.npz", "latest.npz"]


@posix_only
def test_save_through_a_dangling_link_creates_its_target(tmp_path):
    (tmp_path / "latest.npz").symlink_to("sub/new.npz")
    with pytest.raises(FileNotFoundError, match="sub' does not exist"):
        mg.save(_ckpt(1), tmp_path / "latest.npz")
    assert (tmp_path / "latest.npz").is_symlink() and _listing(tmp_path) == ["latest.npz"]
    (tmp_path / "sub").mkdir()
    mg.save(_ckpt(2), tmp_path / "latest.npz")
    assert (tmp_path / "latest.npz").is_symlink()
    np.testing.assert_array_equal(_w(tmp_path / "sub" / "new.npz"), np.full(3, 2.0))


@posix_only
def test_save_refuses_a_symlink_loop_without_writing(tmp_path):
    (tmp_path / "a.npz").symlink_to("b.npz")
    (tmp_path / "b.npz").symlink_to("a.npz")
    with pytest.raises(OSError, match="a.npz"):
        mg.save(_ckpt(1), tmp_path / "a.npz")
    assert _listing(tmp_path) == ["a.npz", "b.npz"]


# ---- save keeps permissions ------------------------------------------------------------------------------
@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_save_keeps_an_existing_files_mode_like_torch(tmp_path, mode):
    torch = pytest.importorskip("torch")
    ours, theirs = tmp_path / "ours.npz", tmp_path / "theirs.pt"
    mg.save(_ckpt(0), ours)
    torch.save({"w": torch.zeros(3)}, theirs)
    os.chmod(ours, mode)
    os.chmod(theirs, mode | stat.S_IWUSR)  # torch opens the file for writing: it needs the write bit
    mg.save(_ckpt(1), ours)
    torch.save({"w": torch.ones(3)}, theirs)
    assert stat.S_IMODE(os.stat(theirs).st_mode) == mode | stat.S_IWUSR
    assert stat.S_IMODE(os.stat(ours).st_mode) == mode
    np.testing.assert_array_equal(_w(ours), np.ones(3))


@posix_only
def test_a_new_checkpoint_gets_the_umasks_mode(tmp_path):
    old = os.umask(0o027)
    try:
        mg.save(_ckpt(0), tmp_path / "new.npz")
        with open(tmp_path / "plain", "w"):  # what any newly created file gets
            pass
    finally:
        os.umask(old)
    modes = [stat.S_IMODE(os.stat(tmp_path / name).st_mode) for name in ("new.npz", "plain")]
    assert modes[0] == modes[1] == 0o640


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another owner; not running as root")
def test_save_as_root_keeps_the_files_owner_and_group(tmp_path):
    path = tmp_path / "theirs.npz"
    mg.save(_ckpt(0), path)
    os.chown(path, 12345, 23456)
    mg.save(_ckpt(1), path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (12345, 23456)


# ---- save refuses what is not a regular file --------------------------------------------------------------
@posix_only
def test_save_refuses_a_fifo_without_blocking_or_replacing_it(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"pipe\.npz' is a named pipe \(FIFO\).*nothing was written"):
        mg.save(_ckpt(1), fifo)
    assert time.perf_counter() - start < 5
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _listing(tmp_path) == ["pipe.npz"]
    # a link to it is refused too, and stays a link
    (tmp_path / "link.npz").symlink_to(fifo)
    with pytest.raises(OSError, match="named pipe"):
        mg.save(_ckpt(1), tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
def test_save_refuses_a_socket(tmp_path):
    path = tmp_path / "s.npz"
    if len(str(path)) >= 100:  # sun_path is ~104 bytes
        pytest.skip(f"tmp_path too long for a Unix socket name: {path}")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(OSError, match="is a socket"):
            mg.save(_ckpt(1), path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode) and _listing(tmp_path) == ["s.npz"]


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_save_refuses_dev_null_and_leaves_it_alone(monkeypatch):
    before = os.stat("/dev/null")
    real_replace = os.replace

    def guarded_replace(src, dst):
        # never let a regression replace the real device node (CI runs as root)
        if os.path.realpath(dst) == "/dev/null":
            os.unlink(src)
            pytest.fail("save tried to rename a file over /dev/null")
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", guarded_replace)
    with pytest.raises(OSError, match="'/dev/null' is a character device"):
        mg.save(_ckpt(1), "/dev/null")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert not [name for name in os.listdir("/dev") if name.startswith(".null.")]


@posix_only
def test_save_refuses_a_link_to_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "link.npz").symlink_to("d")
    with pytest.raises(IsADirectoryError, match="link.npz' is a directory"):
        mg.save(_ckpt(1), tmp_path / "link.npz")
    assert _listing(tmp_path / "d") == [] and (tmp_path / "link.npz").is_symlink()


# ---- load: declared sizes against the file ----------------------------------------------------------------
GIB = 1 << 30


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _structure(root):
    return _npy(np.array(json.dumps({"format": "minigrad-checkpoint", "version": 1, "root": root})))


def _crafted(path, declared_shape, data_bytes=1 << 20):
    """A 1 MiB archive whose one array's .npy header declares ``declared_shape`` (float64)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": declared_shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__minigrad__.npy", _structure({"k": "array", "a": "a0"}))
        z.writestr("a0.npy", header.getvalue() + bytes(data_bytes))
    return header.getvalue()


def _patch_sizes(path, member, compress_size, file_size):
    """Overwrite ``member``'s sizes in the zip's central directory and its local header."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for signature, size_at, name_at in ((b"PK\x01\x02", 20, 46), (b"PK\x03\x04", 18, 30)):
        pos = data.find(signature)
        while pos >= 0:
            if data[pos + name_at:pos + name_at + len(name)] == name:
                struct.pack_into("<II", data, pos + size_at, compress_size, file_size)
            pos = data.find(signature, pos + 1)
    path.write_bytes(bytes(data))


def _load_peak(path):
    """(the exception load raised, seconds, peak bytes traced while loading)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(CheckpointError) as info:
            mg.load(path)
        return info.value, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", [(GIB // 8,), (1 << 40, 1 << 20), (0, -4)],
                         ids=["1GiB", "2**63B", "negative"])
def test_load_refuses_a_header_declaring_more_than_the_entry_holds(tmp_path, shape):
    path = tmp_path / "crafted.npz"
    _crafted(path, shape)
    assert path.stat().st_size < 2 << 20
    err, seconds, peak = _load_peak(path)
    assert "array entry 'a0' declares" in str(err)
    assert seconds < 5 and peak < 16 << 20, (seconds, peak)


def test_load_refuses_zip_sizes_the_file_cannot_hold(tmp_path):
    path = tmp_path / "crafted.npz"
    header = _crafted(path, (GIB // 8,))
    real = len(header) + (1 << 20)
    # a stored entry claiming 1 GiB of data, its header agreeing
    _patch_sizes(path, "a0.npy", real, len(header) + GIB)
    err, seconds, peak = _load_peak(path)
    assert f"declares {len(header) + GIB:,} bytes of data, more than its {real:,} stored bytes" in str(err)
    assert seconds < 5 and peak < 16 << 20, (seconds, peak)
    # and one claiming 1 GiB stored in the 1 MiB file
    _patch_sizes(path, "a0.npy", len(header) + GIB, len(header) + GIB)
    err, seconds, peak = _load_peak(path)
    assert "past the end of the" in str(err)
    assert seconds < 5 and peak < 16 << 20, (seconds, peak)


def test_load_still_reads_compressed_and_fortran_order_archives(tmp_path):
    # np.savez_compressed writes deflated entries; np.save keeps a Fortran-ordered array's layout
    arr = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    path = tmp_path / "c.npz"
    with open(path, "wb") as f:
        np.savez_compressed(f, __minigrad__=np.array(json.dumps(
            {"format": "minigrad-checkpoint", "version": 1, "root": {"k": "array", "a": "a0"}})), a0=arr)
    back = mg.load(path)
    np.testing.assert_array_equal(back, np.load(path)["a0"])
    assert back.flags.f_contiguous


@posix_only
def test_load_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    code = (f"import minigrad as mg\ntry:\n    mg.load({str(fifo)!r})\nexcept Exception as e:\n"
            "    print(type(e).__name__, e)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         check=False)
    assert out.stdout.startswith("CheckpointError") and "named pipe" in out.stdout, out.stdout + out.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/status: Linux")
def test_load_of_a_checkpoint_too_large_for_memory_is_a_memory_error_naming_the_array(tmp_path):
    path = tmp_path / "big.npz"
    mg.save({"model": {"rnn.weight_hh_l0": mg.zeros(4096, 4096)}}, path)  # 64 MiB of float32
    # In a child whose address space is capped 32 MiB above what it already maps, the 64 MiB array does
    # not fit (a stand-in for a checkpoint larger than the machine's memory).
    code = textwrap.dedent(f"""
        import resource
        import minigrad as mg
        vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                  if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (32 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            mg.load({str(path)!r})
        except Exception as e:
            print(type(e).__name__, e)
        """)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         check=False)
    expected = "MemoryError load: not enough memory for obj['model']['rnn.weight_hh_l0']"
    assert out.stdout.startswith(expected), out.stdout + out.stderr
    assert "shape (4096, 4096) and dtype float32 (67,108,864 bytes" in out.stdout


def test_int_and_bool_tensors_round_trip_like_torch(tmp_path):
    import torch
    state = {"idx": mg.tensor([3, 1, 2]), "i32": mg.tensor(np.array([1, -2], np.int32)),
             "mask": mg.tensor([True, False]), "w": mg.tensor([0.5], requires_grad=True)}
    mg.save(state, tmp_path / "ints.npz")
    back = mg.load(tmp_path / "ints.npz")
    torch.save({k: torch.from_numpy(v.numpy()) for k, v in state.items()}, tmp_path / "ints.pt")
    theirs = torch.load(tmp_path / "ints.pt")
    for k in state:
        assert back[k].dtype == state[k].dtype and str(theirs[k].dtype).endswith(
            {"int64": "int64", "int32": "int32", "bool": "bool", "float32": "float32"}[str(back[k].dtype)])
        np.testing.assert_array_equal(back[k].numpy(), theirs[k].numpy())
    assert back["w"].requires_grad and not back["idx"].requires_grad
