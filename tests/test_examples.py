"""Every example in examples/ runs in its --smoke mode and exits 0 (each checks that its loss fell), answers
--help, and prints the results that make it worth reading (checked here against hand counts and torch)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["many_to_one.py", "many_to_many_tagging.py", "hello.py", "timeseries_tbptt.py",
            "seq2seq_reverse.py", "vanishing_exploding.py", "tiny_rnn.py", "keras_simplernn.py",
            "one_to_many.py"]


def run_example(name, *args, cwd):
    # One kernel thread: smoke-sized matrices gain nothing from more, and it keeps CI timings steady.
    env = dict(os.environ, MINIGRAD_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def run_ok(name, *args, cwd):
    done = run_example(name, *args, cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done.stdout


def test_every_example_is_listed_and_documented():
    # the gated-cell examples run in tests/test_examples_gated.py (their smoke runs check more)
    gated = {"lstm_vs_rnn.py", "tbptt_blind_spot.py"}
    on_disk = {p.name for p in (ROOT / "examples").glob("*.py")}
    assert on_disk - gated == set(EXAMPLES)
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    for name in [*EXAMPLES, *sorted(gated)]:
        assert f"| `{name}` |" in readme, name  # a row in the table
        assert f"**`{name}`**" in readme, name  # and a paragraph


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_in_smoke_mode(name, tmp_path):
    run_ok(name, "--smoke", cwd=tmp_path)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_answers_help(name, tmp_path):
    out = run_ok(name, "--help", cwd=tmp_path)
    assert out.startswith(f"usage: {name}") and "--smoke" in out
    assert not list(tmp_path.iterdir())  # --help trains nothing and writes nothing


def test_hello_draws_its_graph(tmp_path):
    run_ok("hello.py", "--smoke", "--graph", "hello.dot", cwd=tmp_path)
    dot = (tmp_path / "hello.dot").read_text()
    assert dot.count("subgraph cluster_step_") == 4  # h -> e -> l -> l -> o: four steps


def test_hello_decodes_greedily_and_by_sampling(tmp_path):
    out = run_ok("hello.py", cwd=tmp_path)  # the full run: 100 steps take a second or two
    assert "P(h)  P(e)  P(l)  P(o)" in out  # the seed's vocabulary order
    assert re.search(r"^greedy: (\w+)$", out, re.MULTILINE).group(1) == "ello"
    decodings = re.findall(r"greedy \(argmax\) gives '(\w+)' every time; sampling gives ([\w ]+)$", out,
                           re.MULTILINE)
    assert len(decodings) == 4  # untrained, after 5 and 10 steps, trained
    assert decodings[-1][0] == "hello"
    # post 003's point: while the model is unsure, the samples differ from the greedy word and each other
    words = decodings[1][1].split()
    assert len(words) == 8 and all(len(w) == 5 and w[0] == "h" and set(w) <= set("helo") for w in words)
    assert len(set(words)) > 1 and any(w != decodings[1][0] for w in words)


def test_keras_simplernn_matches_keras_counts_shapes_and_formula(tmp_path):
    torch = pytest.importorskip("torch")
    out = run_ok("keras_simplernn.py", "--smoke", cwd=tmp_path)
    row = r"^  (\S.*)\n +keras (\(.*?\)) +minigrad (\(.*?\)) +params: keras (\d+), minigrad (\d+)$"
    rows = re.findall(row, out, re.MULTILINE)
    assert len(rows) == 7
    for _, keras_shape, our_shape, _, _ in rows:
        assert our_shape == keras_shape
    # the four shapes of post 004, in its order
    assert [r[1] for r in rows[:4]] == ["(None, 32)", "(8, 32)", "(None, 16, 32)", "(8, 16, 32)"]
    F_in, H = 64, 32
    keras_one = F_in * H + H * H + H  # kernel, recurrent_kernel, one bias
    assert keras_one == 3104 and keras_one + H == 3136
    configs = [{}] * 4 + [{"num_layers": 2}, {"bidirectional": True}, {"bidirectional": True}]
    keras_counts = [3104] * 4 + [keras_one + (H * H + H * H + H), 2 * keras_one, 2 * keras_one]
    for row, config, keras_count in zip(rows, configs, keras_counts):
        torch_count = sum(p.numel() for p in torch.nn.RNN(F_in, H, batch_first=True, **config).parameters())
        assert (int(row[3]), int(row[4])) == (keras_count, torch_count), row[0]
    assert f"minigrad total 3136 = keras 3104 + {H} (the second bias, bias_hh)" in out
    assert "Total params: 3,136" in out and "Trainable params: 3,136" in out

    diff = re.search(r"max \|minigrad - keras formula\| over output and h_n: (\S+)$", out, re.MULTILINE)
    assert float(diff.group(1)) < 1e-5

    trap = dict(re.findall(r"^  (output.*?) +max diff (\S+)", out, re.MULTILINE))
    assert len(trap) == 4
    assert float(trap["output[:, -1, 32:] vs h_n[1] (backward, after all 16 steps)"]) > 0.1
    for what, value in trap.items():
        if "h_n[1] (backward" not in what:
            assert float(value) < 1e-5, what


def test_one_to_many_spells_every_digit(tmp_path):
    out = run_ok("one_to_many.py", cwd=tmp_path)  # the full run: a second or two
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    spelled = re.findall(r"^  (\d) -> (\w+)\.", out, re.MULTILINE)
    assert spelled == [(str(d), n) for d, n in enumerate(names)]


def test_tiny_rnn_prints_a_sample(tmp_path):
    out = run_ok("tiny_rnn.py", "--smoke", cwd=tmp_path)
    sample = out.split("sample:\n", 1)[1][:-1]  # print's newline; the sample may hold newlines of its own
    assert sample.startswith("Beautiful is") and len(sample) == len("Beautiful is") + 80


def test_vanishing_exploding_writes_its_figure(tmp_path):
    pytest.importorskip("matplotlib.figure")
    run_ok("vanishing_exploding.py", "--smoke", "--out", "gtt.png", cwd=tmp_path)
    assert (tmp_path / "gtt.png").read_bytes()[:4] == b"\x89PNG"
