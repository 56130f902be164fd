"""The ``minigrad`` command: each subcommand does what it says; bad input gets one line, not a traceback."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.cli import bench, demo, main

ROOT = Path(__file__).resolve().parent.parent
ZEN = """Beautiful is better than ugly. Explicit is better than implicit. Simple is better than complex.
Complex is better than complicated. Flat is better than nested. Sparse is better than dense.
Readability counts. Special cases aren't special enough to break the rules.
"""
# Small and fast: a tiny model on a repeated text, one thread (tiny matrices gain nothing from more).
TINY = ["--hidden", "32", "--embed", "8", "--window", "16", "--streams", "8", "--threads", "1"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "zen.txt"
    path.write_text(ZEN * 40, encoding="utf-8")
    return path


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def final_sample(out):
    match = re.search(r"--- sample \(seed \d+, temperature [\d.]+\) ---\n(.*)\n---\n", out, re.DOTALL)
    assert match, out
    return match.group(1)


def test_demo_loss_falls_and_checkpoint_reproduces_the_sample(capsys, tmp_path, text_file):
    ckpt = tmp_path / "model.npz"
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 300, "--lr", 0.01, "--seed", 3,
                             "--save", ckpt, *TINY)
    assert code == 0, err
    first, last = re.search(r"train loss: ([\d.]+) -> ([\d.]+)", out).groups()
    assert float(last) < 0.3 * float(first)
    perplexity, unigram = re.search(r"perplexity ([\d.]+) \(unigram frequencies: ([\d.]+)", out).groups()
    assert float(perplexity) < 0.25 * float(unigram)  # held-out text: it learned the text, not the letters
    assert "chars/s" in out and "--- sample at step" in out
    sample = final_sample(out)
    assert len(sample) == demo.SAMPLE_LENGTH

    code, again, err = run_cli(capsys, "demo", "--load", ckpt, "--sample", demo.SAMPLE_LENGTH, "--seed", 3)
    assert code == 0, err
    assert again == sample + "\n"  # the same characters, and the line ends
    code, other, _ = run_cli(capsys, "demo", "--load", ckpt, "--sample", demo.SAMPLE_LENGTH, "--seed", 4)
    assert code == 0 and other != sample


def test_demo_resumes_from_a_checkpoint(capsys, tmp_path, text_file):
    ckpt, again = tmp_path / "model.npz", tmp_path / "again.npz"
    train = ["demo", "--text", text_file, "--lr", 0.01]
    code, _, err = run_cli(capsys, *train, "--steps", 60, "--save", ckpt, *TINY)
    assert code == 0, err
    code, out, err = run_cli(capsys, *train, "--steps", 5, "--load", ckpt, "--threads", 1, "--sample-every", 2,
                             "--save", again)
    assert code == 0, err
    start = float(re.search(r"train loss: ([\d.]+)", out).group(1))
    assert start < 3.0  # already trained: far below the ~3.7 of an untrained model
    # It says so, and counts on from the checkpoint's 60 steps: progress, samples and the saved count agree.
    assert f"resumed from {ckpt} after step 60: training steps 61 to 65" in out
    assert re.findall(r"^step +(\d+)/(\d+) ", out, re.MULTILINE) == [(str(s), "65") for s in range(61, 66)]
    assert re.findall(r"--- sample at step (\d+) ", out) == ["62", "64"]
    assert mg.load(again)["step"] == 65
    code, _, err = run_cli(capsys, "demo", "--load", ckpt, "--hidden", 64, "--sample", 5)
    assert code == 2 and "disagrees with the checkpoint" in err


@pytest.mark.parametrize("cell, layer", [("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_demo_trains_each_cell(capsys, text_file, cell, layer):
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 100, "--lr", 0.01, "--cell", cell,
                             *TINY)
    assert code == 0, err
    assert f"-> {layer}(8, 32, num_layers=1) ->" in out
    first, last = re.search(r"train loss: ([\d.]+) -> ([\d.]+)", out).groups()
    assert float(last) < 0.4 * float(first)
    perplexity, unigram = re.search(r"perplexity ([\d.]+) \(unigram frequencies: ([\d.]+)", out).groups()
    assert float(perplexity) < 0.6 * float(unigram)


def test_demo_checkpoint_records_the_cell(capsys, tmp_path, text_file):
    ckpt, old = tmp_path / "lstm.npz", tmp_path / "old.npz"
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 20, "--cell", "lstm", "--seed", 5,
                             "--save", ckpt, *TINY)
    assert code == 0, err
    saved = mg.load(ckpt)
    assert saved["config"]["cell"] == "lstm" and "rnn.weight_hr_l0" not in saved["model"]
    assert saved["model"]["rnn.weight_hh_l0"].shape == (4 * 32, 32)
    sample = final_sample(out)
    for cell in ([], ["--cell", "lstm"]):  # the checkpoint's cell, named or not
        code, again, err = run_cli(capsys, "demo", "--load", ckpt, "--sample", demo.SAMPLE_LENGTH, "--seed", 5,
                                   *cell)
        assert code == 0 and again == sample + "\n", err
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 2, "--load", ckpt, "--threads", 1)
    assert code == 0 and "-> LSTM(8, 32, num_layers=1) ->" in out, err  # resumes as an LSTM
    for cell in ("gru", "rnn"):
        code, out, err = run_cli(capsys, "demo", "--load", ckpt, "--cell", cell, "--sample", 5)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert f"--cell {cell} disagrees with the checkpoint, which has cell lstm" in err
    # A checkpoint written before --cell existed has no "cell": it holds an nn.RNN.
    code, _, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 2, "--save", old, *TINY)
    assert code == 0, err
    saved = mg.load(old)
    del saved["config"]["cell"]
    mg.save(saved, old)
    code, out, err = run_cli(capsys, "demo", "--load", old, "--sample", 5)
    assert code == 0 and len(out) == 6, err
    code, _, err = run_cli(capsys, "demo", "--load", old, "--cell", "lstm", "--sample", 5)
    assert code == 2 and "which has cell rnn" in err


def test_demo_sample_echoes_the_prime_and_ends_the_line(capsys, tmp_path, text_file):
    ckpt = tmp_path / "model.npz"
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 20, "--save", ckpt,
                             "--prime", "Flat is", *TINY)
    assert code == 0, err
    assert final_sample(out).startswith("Flat is")  # training's samples show their prime too
    code, out, err = run_cli(capsys, "demo", "--load", ckpt, "--sample", 30, "--prime", "Flat is")
    assert code == 0, err
    assert out.startswith("Flat is") and out.endswith("\n") and len(out) == len("Flat is") + 30 + 1
    code, out, err = run_cli(capsys, "demo", "--load", ckpt, "--sample", 30)
    assert code == 0, err
    assert len(out) == 30 + 1 and out.endswith("\n")  # no --prime: nothing echoed (the newline it starts from)


def test_demo_default_corpus_is_the_standard_library(capsys):
    code, out, err = run_cli(capsys, "demo", "--steps", 3, *TINY)
    assert code == 0, err
    assert "Python standard library sources" in out and "validation:" in out


def test_demo_plot(capsys, tmp_path, text_file):
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    code, _, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 10, "--plot", png, *TINY)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_draws_the_first_window(capsys, tmp_path, text_file):
    dot = tmp_path / "window.dot"
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 2, "--graph", dot, *TINY)
    assert code == 0, err
    assert f"graph of the first window written to {dot}" in out
    text = dot.read_text()
    assert text.startswith("digraph") and "rnn.weight_hh_l0" in text and "|grad|" in text


def test_demo_plot_without_matplotlib_says_what_to_install(capsys, monkeypatch, tmp_path, text_file):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--plot", tmp_path / "x.png", *TINY)
    assert code == 2 and out == ""
    assert "pip install matplotlib" in err


def bad_arguments(tmp_path):
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    short = tmp_path / "short.txt"
    short.write_text("just a few characters\n")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf")
    not_ckpt = tmp_path / "not_a_checkpoint.npz"
    np.savez(not_ckpt, x=np.zeros(3))
    return {
        "missing file": (["--text", tmp_path / "nope.txt"], "no such file"),
        "binary file": (["--text", binary], "binary"),
        "not utf-8": (["--text", latin1], "not UTF-8"),
        "directory": (["--text", tmp_path], "directory"),
        "negative hidden": (["--hidden", "-4"], "positive integer"),
        "zero streams": (["--streams", "0"], "positive integer"),
        "negative lr": (["--lr", "-0.1"], "> 0"),
        "negative clip": (["--clip", "-1"], ">= 0"),
        "zero temperature": (["--temperature", "0"], "> 0"),
        "window longer than data": (["--text", short], "longer than the data"),
        "sample without load": (["--sample", "10"], "--load"),
        "missing checkpoint": (["--load", tmp_path / "nope.npz", "--sample", "5"], "no such file"),
        "not a checkpoint": (["--load", not_ckpt, "--sample", "5"], "not a minigrad checkpoint"),
        "save into missing dir": (["--save", tmp_path / "no" / "ckpt.npz"], "does not exist"),
        "save under a file": (["--save", short / "sub" / "ckpt.npz"], "short.txt is not a directory"),
        "save onto a directory": (["--save", tmp_path], "is a directory"),
        "plot onto a directory": (["--plot", tmp_path], "is a directory"),
        "only a BOM": (["--text", bom], "holds no text"),
        "huge hidden": (["--hidden", "2000000"], "--hidden: expected a positive integer up to 16384"),
        "huge embed": (["--embed", "2000000000"], "--embed: expected a positive integer up to 16384"),
        # not 100000: were the bound lost, 100000 small layers would each allocate and exhaust the machine
        "too many layers": (["--layers", "65", "--text", short], "--layers: expected a positive integer"),
        "too many threads": (["--threads", "100000"], "--threads 100000: set_num_threads"),
        "unknown option": (["--hiddne", "3"], "unrecognized"),
        "graph file type": (["--graph", tmp_path / "graph.jpg"], ".svg"),
        "unknown cell": (["--cell", "transformer"], "--cell: invalid choice: 'transformer'"),
    }


BAD_CASES = ["missing file", "binary file", "not utf-8", "directory", "negative hidden", "zero streams",
             "negative lr", "negative clip", "zero temperature", "window longer than data",
             "sample without load", "missing checkpoint", "not a checkpoint", "save into missing dir",
             "unknown option", "graph file type", "save under a file", "save onto a directory",
             "plot onto a directory", "only a BOM", "huge hidden", "huge embed", "too many layers",
             "too many threads", "unknown cell"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_arguments_give_one_line_and_exit_2(capsys, tmp_path, case):
    argv, message = bad_arguments(tmp_path)[case]
    code, out, err = run_cli(capsys, "demo", *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("minigrad: error:") and message in err


def test_python_dash_m_runs_and_errors_without_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = subprocess.run([sys.executable, "-m", "minigrad", "info"], capture_output=True, text=True, env=env,
                        cwd=tmp_path, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "minigrad", "demo", "--text", str(tmp_path / "missing.txt")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and bad.stderr.strip().startswith("minigrad: error:")


def _limit_memory():
    """In the child: at most 4 GiB of address space, so a text read without end fails instead of
    exhausting the machine."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs POSIX")
def test_text_that_is_not_a_regular_file_is_refused_without_reading(tmp_path):
    """--text naming a named pipe (directly or through a symbolic link) or a device: one line and exit 2.
    Opening the pipe used to block for ever; /dev/zero was read until memory ran out.  Run in a child with
    a time and memory limit, so that a regression fails rather than hangs."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for path, kind in ((fifo, "a named pipe (FIFO)"), (link, "a named pipe (FIFO)"),
                       ("/dev/zero", "a character device")):
        r = subprocess.run([sys.executable, "-m", "minigrad", "demo", "--text", str(path), "--steps", "1"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
                           preexec_fn=_limit_memory)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == f"minigrad: error: --text {path} is {kind}, not a text file", r.stderr


def test_read_text_refuses_a_text_over_its_limit(tmp_path, monkeypatch):
    from minigrad import data
    monkeypatch.setattr(data, "MAX_TEXT_BYTES", 10)
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("0123456789")
    big.write_text("0123456789a")
    assert data.read_text(small) == "0123456789"
    with pytest.raises(ValueError, match="big.txt has 11 bytes; texts of at most 10 bytes are read"):
        data.read_text(big)


def test_bad_environment_is_one_line_for_the_command_and_an_exception_for_the_library(tmp_path):
    """MINIGRAD_ISA=bogus: `python -m minigrad info` and the `minigrad` script say it in one line (exit 2);
    `import minigrad` raises the ValueError as before."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MINIGRAD_ISA="bogus")
    script = os.path.join(os.path.dirname(sys.executable), "minigrad")
    commands = [[sys.executable, "-m", "minigrad", "info"]]
    if os.path.exists(script):
        commands.append([script, "info"])
    for command in commands:
        r = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                           check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        want = "minigrad: error: set_isa: unknown kernel path 'bogus'; expected one of portable, avx2, avx512"
        assert r.stderr.strip().splitlines() == [want], r.stderr
    r = subprocess.run([sys.executable, "-c", "import minigrad"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120, check=False)
    assert r.returncode == 1 and "ValueError: set_isa: unknown kernel path 'bogus'" in r.stderr


def test_info_reports_the_build(capsys):
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    for field in ("minigrad", "backend", "ISA path", "parallel kernels", "threads", "numpy BLAS",
                  "OPENBLAS_CORETYPE"):
        assert re.search(rf"^{re.escape(field)}\s", out, re.MULTILINE), field


def test_info_without_threadpoolctl_reads_numpy_config(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    code, out, _ = run_cli(capsys, "info")
    assert code == 0 and "numpy build configuration" in out


def test_verify_agrees_with_torch(capsys):
    pytest.importorskip("torch")
    code, out, err = run_cli(capsys, "verify")
    assert code == 0, out + err
    assert "all 160 configurations agree with torch" in out
    rows = [line.split()[0] for line in out.splitlines() if line.endswith(" ok")]
    assert [rows.count(cell) for cell in ("rnn", "lstm", "gru")] == [64, 64, 32]
    code, out, err = run_cli(capsys, "verify", "--cell", "lstm", "--hidden", 1)  # no room for a projection
    assert code == 0 and "all 32 configurations agree with torch" in out and err == ""


def test_verify_without_torch_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    code, _, err = run_cli(capsys, "verify")
    assert code == 2 and "pip install torch" in err


def test_bench_runs_the_report_script_or_explains(capfd, monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "suite_dir", lambda: tmp_path / "bench")
    assert main(["bench"]) == 2
    assert "source checkout" in capfd.readouterr().err
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "report.py").write_text("import sys\nprint('ratio table', sys.argv[1:])\n")
    assert main(["bench", "--quick", "--only", "rnn"]) == 0
    assert "ratio table ['--quick', '--only', 'rnn']" in capfd.readouterr().out


def test_unwritable_save_path_is_refused_before_training(capsys, tmp_path, text_file):
    """Found up front, not after the whole run: here a path under a regular file (ENOTDIR, refused even for
    root), a FIFO (writing would block) and a symbolic link to a directory."""
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    (tmp_path / "dirlink.npz").symlink_to(tmp_path)
    for path, message in ((text_file / "sub" / "ckpt.npz", "zen.txt is not a directory"),
                          (fifo, "is not a regular file"), (tmp_path / "dirlink.npz", "is a directory")):
        code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 100000, "--save", path,
                                 *TINY)
        assert code == 2 and out == "", out  # nothing trained: training prints its "data:" line first
        assert err.count("\n") == 1 and message in err, err


def test_save_into_a_read_only_directory_is_refused_before_training(capsys, tmp_path, text_file):
    if os.geteuid() == 0:
        pytest.skip("running as root, which may write into a 0o500 directory; the ENOTDIR, FIFO and "
                    "directory variants in test_unwritable_save_path_is_refused_before_training run as root")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 100000,
                                 "--save", locked / "ckpt.npz", *TINY)
    finally:
        locked.chmod(0o700)
    assert code == 2 and out == ""
    assert "is not writable" in err and err.count("\n") == 1


def test_diverging_run_reports_infinite_perplexity_and_still_saves(capsys, tmp_path, text_file):
    ckpt = tmp_path / "div.npz"
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--steps", 30, "--lr", 1e10, "--clip", 0,
                             "--save", ckpt, *TINY)
    assert code == 0, err
    val = float(re.search(r"validation: ([\d.e+]+|inf|nan) nats/char", out).group(1))
    shown = re.search(r"perplexity (\S+) \(unigram", out).group(1)
    # what numpy's exp says (math.exp raises OverflowError past ~709)
    with np.errstate(over="ignore"):
        assert shown == f"{np.exp(np.float64(val)):.2f}" and val > 710
    assert f"checkpoint written to {ckpt}" in out
    assert mg.load(ckpt)["step"] == 30


def test_sampling_from_diverged_logits_gives_a_distribution():
    torch = pytest.importorskip("torch")
    logits = np.array([0.5, -1.0, 3.0, 2.0])
    np.testing.assert_allclose(demo.sampling_probabilities(logits, 0.8),
                               torch.softmax(torch.from_numpy(logits / 0.8), 0).numpy(), rtol=1e-12)
    # nan counts as -inf (what torch's softmax gives with the nan masked to -inf)
    with_nan = np.array([np.nan, 1.0, 2.0, -np.inf])
    masked = torch.from_numpy(np.where(np.isnan(with_nan), -np.inf, with_nan) / 0.8)
    np.testing.assert_allclose(demo.sampling_probabilities(with_nan, 0.8), torch.softmax(masked, 0).numpy(),
                               rtol=1e-12)
    # +inf logits share the probability; nothing finite (torch gives nan here) is uniform
    np.testing.assert_array_equal(demo.sampling_probabilities(np.array([np.inf, 1.0, np.inf]), 1.0),
                                  [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(demo.sampling_probabilities(np.array([np.nan, -np.inf]), 1.0), [0.5, 0.5])


def test_sparkline_of_a_diverged_run():
    line = demo.sparkline([1.0, 2.0, 3.0, float("inf"), float("nan")], buckets=5)
    assert line.startswith("▁▅███") and line.endswith("(1.00 .. nan)")  # 2.0 is halfway: level 3.5 -> 4


def test_no_command_prints_usage_and_one_error_line_to_stderr(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and out == ""
    usage, error = err.splitlines()
    assert usage.startswith("usage: minigrad") and error.startswith("minigrad: error: a command is required")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bare = subprocess.run([sys.executable, "-m", "minigrad"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert bare.returncode == 2 and bare.stdout == "" and bare.stderr == err


def test_verify_sizes_are_bounded(capsys):
    code, out, err = run_cli(capsys, "verify", "--hidden", 3000000)
    assert code == 2 and out == "" and "--hidden: expected a positive integer up to" in err


def test_out_of_memory_is_one_line(capsys, monkeypatch):
    def huge(*args, **kwargs):
        return np.empty((1 << 24, 1 << 24), np.float32)  # 1 PiB: more than any address space
    monkeypatch.setattr(demo, "CharRNN", huge)
    code, _, err = run_cli(capsys, "demo", "--steps", 1, *TINY)
    assert code == 2 and "Traceback" not in err
    assert err.startswith("minigrad: error: out of memory: Unable to allocate") and err.count("\n") == 1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_model_too_large_for_memory_is_refused_before_allocating(capsys, monkeypatch, text_file, cell):
    """Each matrix of a 64-layer, 16384-wide RNN could be allocated on its own, and the kernel's OOM killer
    would end the run; the whole is refused first, counting parameters as torch does (an LSTM's and a
    GRU's gates included)."""
    torch = pytest.importorskip("torch")
    # were the check lost, fail here rather than exhaust the machine's memory
    monkeypatch.setattr(demo, "CharRNN", lambda *args: pytest.fail("the model was built"))
    code, out, err = run_cli(capsys, "demo", "--text", text_file, "--hidden", 16384, "--layers", 64,
                             "--embed", 16384, "--cell", cell)
    assert code == 2 and out == "" and err.count("\n") == 1
    vocab = len(set(ZEN))
    recurrent = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    with torch.device("meta"):  # shapes without memory
        modules = (torch.nn.Embedding(vocab, 16384), recurrent(16384, 16384, 64),
                   torch.nn.Linear(16384, vocab))
    count = sum(p.numel() for m in modules for p in m.parameters())
    assert f"the model would have {count:,} parameters" in err and "more than this machine's" in err
