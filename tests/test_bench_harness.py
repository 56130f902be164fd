"""The benchmark harness's own logic (``bench/``): what the report's figures rest on -- the thread limits,
the FLOP count behind "% of FLOP bound", the parse of the measured peak, blocks and idle gaps, the
JAX peer's agreement with torch, and the smoke mode of the report."""
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ lives beside the package, not inside it
    sys.path.insert(0, str(ROOT))

import minigrad as mg
from bench import cases, harness, jax_peer, report

threadpoolctl = pytest.importorskip("threadpoolctl")


def _numpy_blas_threads():
    pools = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    mine = [p for p in pools if "numpy" in p["filepath"]] or pools
    return mine[0]["num_threads"]


@pytest.mark.parametrize("n", [1, 2])
def test_threads_limit_numpy_blas_torch_and_minigrad_then_restore(n):
    before = (_numpy_blas_threads(), torch.get_num_threads(), mg.get_num_threads())
    with harness.threads(n):
        # threadpoolctl reads the count back from OpenBLAS itself: the limit really reached numpy's BLAS
        assert (_numpy_blas_threads(), torch.get_num_threads(), mg.get_num_threads()) == (n, n, n)
        assert harness.thread_counts() == {"minigrad": n, "torch": n, "numpy": n}
    assert (_numpy_blas_threads(), torch.get_num_threads(), mg.get_num_threads()) == before


def test_rnn_step_flops_by_hand():
    # B=32 T=64 I=64 H=128, one layer: forward x @ W_ih (2·T·B·I·H) and 63 steps of h @ W_hh (2·63·B·H·H);
    # backward W_ih's gradient (2·T·B·I·H), and the state's gradient and W_hh's over 63 steps (2 x 2·63·B·H·H)
    cfg = cases.RNNConfig(32, 64, 64, 128, 1, False)
    by_hand = 2 * (2 * 64 * 32 * 64 * 128) + 3 * (2 * 63 * 32 * 128 * 128)
    assert by_hand == 265_289_728
    assert cases.step_flops("rnn", cfg) == by_hand
    # LSTM: four gate blocks of H columns, everything four times wider
    assert cases.step_flops("lstm", cfg) == 4 * by_hand
    assert cases.step_flops("gru", cfg) == 3 * by_hand


def test_rnn_step_flops_second_bidirectional_layer_by_hand():
    # layer 2 reads both directions (width 2H) and also passes its input's gradient down
    cfg = cases.RNNConfig(2, 3, 5, 7, 2, True)
    layer0 = 2 * (2 * (2 * 6 * 5 * 7) + 3 * (2 * 2 * 2 * 7 * 7))
    layer1 = 2 * (3 * (2 * 6 * 14 * 7) + 3 * (2 * 2 * 2 * 7 * 7))
    assert cases.step_flops("rnn", cfg) == layer0 + layer1


@pytest.mark.parametrize("text,expected", [
    ("f32 117.3 f64 58.1 avx512\n", {"f32": 117.3, "f64": 58.1, "isa": "avx512"}),
    ("f32 60 f64 30 avx2", {"f32": 60.0, "f64": 30.0, "isa": "avx2"}),
    ("", None),                                  # not x86-64: the program prints nothing
    ("f32 117.3 f64 avx512", None),              # a field missing
    ("f64 58.1 f32 117.3 avx512", None),         # swapped
    ("f32 nan f64 58.1 avx512", None),
    ("f32 0.0 f64 58.1 avx512", None),
    ("f32 1e400 f64 58.1 avx512", None),
    ("f32 fast f64 58.1 avx512", None),
])
def test_fma_peak_parse(text, expected):
    assert harness.parse_fma_peak(text) == expected


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not hasattr(os, "sched_getaffinity"),
                    reason="fma_peak.c measures x86-64 cores; pinning needs Linux")
def test_core_speeds_measure_every_usable_cpu_at_once():
    """One float32 figure per CPU this process may use, each a plausible fraction of the full measurement;
    a chosen CPU alone; the balance is the slowest over the fastest."""
    cpus = sorted(os.sched_getaffinity(0))
    # The peak measured once more (the best of its runs), just before and just after the quick figures: a
    # shared host's speed moves between measurements (seen here: both cores' quick figures at 158 and the
    # full measurement a moment later at 104; fma_peak gave 102-181 within one hour), so the figures are
    # compared with the faster of the two, and measured again (at most three times) when the host's speed
    # changed in between.
    for _ in range(3):
        before = harness.fma_peak(again=True)["f32"]
        speeds = harness.core_speeds()
        peak = max(before, harness.fma_peak(again=True)["f32"])
        assert speeds is not None and sorted(speeds) == cpus
        if all(0 < v <= 1.5 * peak for v in speeds.values()):
            break
    assert all(0 < v <= 1.5 * peak for v in speeds.values()), (speeds, peak)
    one = harness.core_speeds([cpus[-1]])
    assert list(one) == [cpus[-1]] and one[cpus[-1]] > 0
    assert harness.core_balance({0: 80.0, 1: 160.0}) == 0.5
    assert harness.core_balance({0: 100.0}) == 1.0 and harness.core_balance(None) is None


@pytest.mark.parametrize("text,expected", [
    ("round_trip_ns 61.2\n", 61.2),
    ("", None),                                  # not Linux: the program prints nothing
    ("round_trip_ns", None),
    ("round_trip_ns fast", None),
    ("round_trip_ns nan", None),
    ("round_trip_ns 0", None),
    ("round_trip_ns -3", None),
    ("latency_ns 61.2", None),
])
def test_round_trip_parse(text, expected):
    assert harness.parse_round_trip(text) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="core_latency.c pins a thread to each of two CPUs (Linux)")
def test_core_round_trip_between_two_usable_cpus():
    """A plausible round trip (a cache line goes there and back in well under a millisecond); nothing with
    one CPU; the program refuses one CPU given twice and a CPU this process may not use."""
    cpus = sorted(os.sched_getaffinity(0))
    ns = harness.core_round_trip()
    assert ns is not None and 1 < ns < 1e6, ns
    assert harness.core_round_trip([cpus[0]]) is None
    exe = harness._compiled("core_latency", ("-pthread",))
    same = subprocess.run([exe, str(cpus[0]), str(cpus[0])], capture_output=True, text=True, timeout=60)
    assert same.returncode == 2 and same.stdout == ""
    outside = max(cpus) + 1
    if outside < 1024:
        far = subprocess.run([exe, str(cpus[0]), str(outside)], capture_output=True, text=True, timeout=60)
        assert far.returncode == 1 and far.stdout == "" and f"CPU {outside}" in far.stderr


def test_interleaved_blocks_hold_min_loops_and_idle_gap_and_report_median():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1
        return fn
    started = time.perf_counter()
    out = harness.interleaved({"a": make("a"), "b": make("b")}, rounds=3, min_block=0.0, min_loops=10,
                              gap=0.05)
    # 3 rounds x 2 libraries, each block after at least 0.05 s idle
    assert time.perf_counter() - started >= 6 * 0.05
    for name in "ab":
        assert out[name]["loops"] >= 10 and out[name]["rounds"] == 3
        assert calls[name] >= 10 * 3 + 1  # calibration, then 3 blocks of at least 10
        assert out[name]["best"] <= out[name]["median"]


def test_rnn_case_without_minigrad_layer_says_not_available(monkeypatch):
    monkeypatch.delattr(cases.mnn, "GRU", raising=False)
    case = cases.rnn_case(cases.RNN_SMOKE_CONFIG, np.float32, "gru")
    assert case.impls == {}
    assert case.meta["unavailable"] == "not available: minigrad.nn.GRU does not exist yet"
    res = report.measure(case, rounds=1, block=0.0)
    table = report.rnn_table([res], [], [])
    assert "not available: minigrad.nn.GRU" in report.render_text(table)


def test_rnn_case_without_jax_says_how_to_get_it(monkeypatch):
    hint = "JAX is not installed: " + jax_peer.INSTALL_HINT
    monkeypatch.setattr(jax_peer, "unavailable_reason", lambda: hint)
    case = cases.rnn_case(cases.RNN_SMOKE_CONFIG, np.float32, "rnn")
    assert "jax" not in case.impls
    res = report.measure(case, rounds=1, block=0.0)
    text = report.render_text(report.rnn_table([res], [], []))
    assert "not installed" in text and 'pip install -e ".[bench]"' in text


# JAX runs in child processes only: its threads in this process would make every later os.fork() in the
# suite warn (and risk a deadlock in the child)
def _python(code_or_args, **kw):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path])), **kw)


def test_jax_peer_matches_float64_torch():
    # the JAX step the report times: loss, gradients and updated weights as torch's, in float64, for each
    # layer kind (straight from cases: the LSTM and GRU rows have no implementations before minigrad has
    # the layers)
    if jax_peer.unavailable_reason():
        pytest.skip(jax_peer.unavailable_reason())
    proc = _python("import numpy as np\n"
                   "from bench import cases\n"
                   "cfg = cases.RNNConfig(3, 5, 4, 6, 2, True)\n"
                   "for kind in cases.RECURRENT:\n"
                   "    step = cases._jax_rnn_step(kind, cfg, np.float64)\n"
                   "    cases.rnn_case(cfg, np.float64, kind).check('jax', step())\n"
                   "    print(kind, 'ok')\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["rnn", "ok", "lstm", "ok", "gru", "ok"]


def test_report_smoke_runs_every_family(tmp_path):
    out = tmp_path / "report.json"
    proc = _python(["bench/report.py", "--smoke", "--markdown", "--json", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| case | threads | minigrad | vs numpy | vs torch | vs JAX | of peak | target |" in proc.stdout
    assert "Measured with `python bench/report.py --smoke --markdown`" in proc.stdout
    assert "targets met (smoke run" in proc.stdout
    data = json.loads(out.read_text())
    assert {c["family"] for c in data["cases"]} == set(cases.FAMILIES)
    assert data["settings"]["mode"] == "smoke" and data["summary"]["check_failures"] == 0
    # the CPUs' distance at the start and end (a figure, or None where it cannot be measured); per case only
    # in timed runs
    assert set(data["machine"]["core_round_trip_ns"]) == {"start", "end"}
    assert all("round_trip_ns" in c and c["round_trip_ns"] is None for c in data["cases"])
    # the new recurrent rows run at smoke size: the other losses and the core-ops LSTM, with the README row
    ids = {c["id"] for c in data["cases"]}
    key = cases.RNN_SMOKE_CONFIG.key
    assert {f"lstm-f32-{key}-mse", f"gru-f32-{key}-sum", f"corelstm-f32-{key}"} <= ids
    assert "| LSTM from core ops f32 " in proc.stdout
    # --render prints the same README table from the saved run, measuring nothing
    again = _python(["bench/report.py", "--render", str(out), "--markdown"], timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout == proc.stdout


def _timed(case, **medians):
    """A report.Result for ``case`` with the given median (and best) seconds per implementation."""
    res = report.Result(case, threads={"minigrad": 2, "torch": 2})
    res.times = {impl.replace("_", " ").replace("torch cell", "torch-cell"): {"median": t, "best": t}
                 for impl, t in medians.items()}
    return res


def test_distance_note_names_the_rows_measured_far_apart():
    small = cases.RNN_CONFIGS[0]
    rows = [_timed(cases.rnn_case(small, dt, kind), minigrad=1.0, torch=2.0)
            for dt, kind in ((np.float32, "rnn"), (np.float32, "lstm"), (np.float64, "gru"))]
    rows[0].round_trip_ns, rows[1].round_trip_ns = 60.0, 340.0  # the third was not measured
    note = report.distance_note(rows, 55.0)
    assert "60-340 ns" in note and f"{rows[1].case.title} (340 ns)" in note
    assert rows[0].case.title not in note and rows[2].case.title not in note
    calm = report.distance_note(rows[:1], 55.0)
    assert calm is not None and "far apart" not in calm
    assert report.distance_note(rows, None) is None and report.distance_note(rows[2:], 55.0) is None


def test_lstm_gru_targets_by_size_cell_loop_and_loss():
    small, big = cases.RNN_CONFIGS[0], cases.RNN_CONFIGS[2]
    rows = [_timed(cases.rnn_case(small, np.float32, "lstm"), minigrad=1.0, torch=1.6, torch_cell=3.1),
            _timed(cases.rnn_case(small, np.float32, "lstm", "sum"), minigrad=1.0, torch=1.4),
            _timed(cases.rnn_case(small, np.float32, "lstm", "mse"), minigrad=1.0, torch=1.55),
            _timed(cases.rnn_case(big, np.float64, "gru"), minigrad=1.0, torch=1.25)]
    record = []
    text = report.render_text(report.rnn_table(rows, record, []))
    verdicts = {r["case"]: {t["target"]: t["pass"] for t in r["targets"]} for r in record}
    assert verdicts[rows[0].case.id] == {"≥1.5× torch": True, "≥3× LSTMCell loop": True}
    assert verdicts[rows[1].case.id] == {"≥1.5× torch": False}
    assert verdicts[rows[2].case.id] == {"≥1.5× torch": True}
    assert verdicts[rows[3].case.id] == {"≥1.2× torch": True}  # H = 256: no cell loop, the lower bar
    assert ("vs torch 1.60× with (out * w).sum(), 1.40× with out.sum(), 1.55× with mse_loss(out, target); "
            "≥1.5× torch holds under (out * w).sum(), mse_loss(out, target).") in text
    assert "no targets yet" not in text


def test_core_ops_lstm_row_is_its_time_over_nn_lstm_times():
    case = cases.core_ops_lstm_case(cases.RNN_CONFIGS[0], np.float32)
    record, summary = [], []
    res = _timed(case, minigrad_core_ops=3.0, torch=2.0, minigrad=1.0, torch_core_ops=6.0)
    text = report.render_text(report.core_ops_lstm_table([res], record, summary))
    assert record[0]["vs_torch_lstm_time"] == 1.5 and record[0]["vs_minigrad_lstm_time"] == 3.0
    assert record[0]["targets"][0]["pass"]  # 1.5x torch's time: at the bound
    assert "1.50×" in text and "3.00×" in text and "2.00×" in text
    assert summary[0].vs["torch"] == pytest.approx(2 / 3) and summary[0].verdict == "PASS"
    res = _timed(case, minigrad_core_ops=3.1, torch=2.0, minigrad=1.0, torch_core_ops=6.0)
    assert "MISS: ≤1.5× torch nn.LSTM's time" in report.render_text(report.core_ops_lstm_table([res], [], []))


def test_spread_summarises_processes_by_core_balance_and_distance(capsys):
    from bench import spread

    spread.show({"a": [2.0, 3.5, 2.1]}, {"a": [1.0, 1.0, 0.5]}, {"a": [60.0, 350.0, 70.0]})
    out = capsys.readouterr().out
    assert "2.00 (1.00, 60 ns) 2.10 (0.50, 70 ns) 3.50 (1.00, 350 ns)" in out
    assert "equal cores 2.75 ms median over 2; unequal cores 2.10 ms median over 1" in out
    assert "near 2.05 ms median over 2; far 3.50 ms median over 1" in out
    spread.show({"a": [2.0]})  # nothing measured around the processes: no summaries
    out = capsys.readouterr().out
    assert "by the" not in out and "1.00x  2.00" in out


def test_after_pause_summary_by_hand(capsys):
    from bench import after_pause

    assert after_pause.BLOCK_OF_REPORT == cases.RNN_MIN_LOOPS  # the block it prices is the report's
    steady = [2.0] * 10
    times = {"loop": [[2.2, 2.0] + steady, [1.8, 2.0] + steady],  # steady step: 2.0
             "pause": [[3.0, 2.4] + steady, [2.0, 2.0] + steady]}  # medians: 2.5, 2.2, then 2.0
    s = after_pause.summary(times)
    assert s["steady"] == 2.0
    assert s["pause first"] == pytest.approx(1.25) and s["pause second"] == pytest.approx(1.1)
    assert s["pause rest"] == 1.0
    assert s["pause block"] == pytest.approx((2.5 + 2.2 + 8 * 2.0) / 10 / 2.0)
    after_pause.show({"minigrad": times})
    assert "minigrad   pause    1.25x   1.10x   1.00x         1.035x" in capsys.readouterr().out


def test_after_pause_refuses_blocks_shorter_than_the_reports():
    from bench import after_pause

    with pytest.raises(SystemExit):
        after_pause.main(["--steps", "5", "--libs", "minigrad"])
    threads = mg.get_num_threads(), torch.get_num_threads()
    with pytest.raises(SystemExit):
        after_pause.main(["--libs", "minigrad,tensorflow", "--blocks", "1"])
    assert (mg.get_num_threads(), torch.get_num_threads()) == threads  # refused before it set anything
