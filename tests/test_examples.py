"""Every example in examples/ runs in its --smoke mode and exits 0 (each checks that its loss fell)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["many_to_one.py", "many_to_many_tagging.py", "hello.py", "timeseries_tbptt.py",
            "seq2seq_reverse.py", "vanishing_exploding.py"]


def run_example(name, *args, cwd):
    # One kernel thread: smoke-sized matrices gain nothing from more, and it keeps CI timings steady.
    env = dict(os.environ, MINIGRAD_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), "--smoke", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_every_example_is_listed_and_documented():
    # the gated-cell examples have their own tests, tests/test_examples_gated.py
    gated = {"lstm_vs_rnn.py", "tbptt_blind_spot.py"}
    on_disk = {p.name for p in (ROOT / "examples").glob("*.py")} - {"tiny_rnn.py"} - gated
    assert on_disk == set(EXAMPLES)
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    for name in EXAMPLES:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_in_smoke_mode(name, tmp_path):
    done = run_example(name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_hello_draws_its_graph(tmp_path):
    done = run_example("hello.py", "--graph", "hello.dot", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dot = (tmp_path / "hello.dot").read_text()
    assert dot.count("subgraph cluster_step_") == 4  # h -> e -> l -> l -> o: four steps


def test_vanishing_exploding_writes_its_figure(tmp_path):
    pytest.importorskip("matplotlib.figure")
    done = run_example("vanishing_exploding.py", "--out", "gtt.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "gtt.png").read_bytes()[:4] == b"\x89PNG"
