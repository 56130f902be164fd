"""The gated layers' sequence kernels: K.lstm_seq and K.gru_seq (every step's gates product and epilogue in one
job), K.lstm_seq_backward and K.gru_seq_backward (the backward through a chain of steps in one job).  Checked
bitwise against the step-by-step kernels they replace (on every ISA path and thread count) and within tolerance
against float64 NumPy from the formulas; no torch here, so that the sanitizer builds run them
(scripts/sanitize.sh)."""
import numpy as np
import pytest

from minigrad import _reference

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 3e-4, np.float64: 1e-11}


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def sigmoid64(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---- K.lstm_seq -----------------------------------------------------------------------------------------
def seq_case(K, rng, dtype, steps, batch, hidden, count):
    """Per direction: input projections (L, M, 4H), h0 and c0 (M, H), W_hh.T (H, 4H) and its packing,
    outputs (L, M, H) filled with nan; the second direction runs backwards."""
    xgs = [randn(rng, (steps, batch, 4 * hidden), dtype, 1.5) for _ in range(count)]
    h0s = [randn(rng, (batch, hidden), dtype) for _ in range(count)]
    c0s = [randn(rng, (batch, hidden), dtype) for _ in range(count)]
    ws = [randn(rng, (hidden, 4 * hidden), dtype, 1.0 / max(hidden, 1) ** 0.5) for _ in range(count)]
    outs = [np.full((steps, batch, hidden), np.nan, dtype) for _ in range(count)]
    return xgs, h0s, c0s, ws, [K.pack(w) for w in ws], outs, [False, True][:count]


def seq_loop(K, xgs, h0s, c0s, packed, reverse):
    """What lstm_seq replaces: addmm then lstm_forward, step by step."""
    results = []
    for xg, h, c, p, rev in zip(xgs, h0s, c0s, packed, reverse):
        steps = xg.shape[0]
        acts, cs, tcs, hs = ([None] * steps for _ in range(4))
        for s in range(steps):
            t = steps - 1 - s if rev else s
            acts[t], cs[t], tcs[t], hs[t] = K.lstm_forward(K.addmm(xg[t], h, p), c)
            h, c = hs[t], cs[t]
        results.append((acts, cs, tcs, hs))
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps,batch,hidden", [(6, 32, 128), (5, 3, 40), (3, 7, 1), (1, 1, 5), (4, 33, 64),
                                                (3, 0, 4), (2, 4, 0)])
@pytest.mark.parametrize("count", [1, 2])
def test_lstm_seq_is_addmm_then_lstm_forward_step_by_step(K, rng, dtype, steps, batch, hidden, count):
    """lstm_seq runs an LSTM layer's forward (the reverse direction backwards): the bits of addmm then
    lstm_forward step by step, each step within tolerance of float64 NumPy from the step before's state;
    the operands unchanged."""
    xgs, h0s, c0s, ws, packed, outs, reverse = seq_case(K, rng, dtype, steps, batch, hidden, count)
    copies = [x.copy() for x in xgs + h0s + c0s]
    acts, cs, tcs = K.lstm_seq(xgs, h0s, c0s, packed, outs, reverse)
    want = seq_loop(K, xgs, h0s, c0s, packed, reverse)
    tol = TOL[dtype]
    for i in range(count):
        assert acts[i].shape == (steps, batch, 4 * hidden) and cs[i].shape == tcs[i].shape == outs[i].shape
        for s in range(steps):
            t = steps - 1 - s if reverse[i] else s
            if K is not _reference:
                for got, w in zip((acts[i][t], cs[i][t], tcs[i][t], outs[i][t]), (x[t] for x in want[i])):
                    assert np.array_equal(got, w), (i, t)
            prev = t + 1 if reverse[i] else t - 1
            h, c = (h0s[i], c0s[i]) if s == 0 else (outs[i][prev], cs[i][prev])
            gates = xgs[i][t].astype(np.float64) + h.astype(np.float64) @ ws[i].astype(np.float64)
            gi, gf, gg, go = np.split(gates, 4, axis=1)
            c64 = sigmoid64(gf) * c + sigmoid64(gi) * np.tanh(gg)
            np.testing.assert_allclose(cs[i][t], c64, rtol=tol, atol=tol)
            np.testing.assert_allclose(outs[i][t], sigmoid64(go) * np.tanh(c64), rtol=tol, atol=tol)
    assert all(np.array_equal(x, y) for x, y in zip(xgs + h0s + c0s, copies))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_seq_threads_bitwise_identical(C, threads, rng, dtype):
    """On 1, 2 or 3 threads -- each thread an even share of the batch's rows through every step, also for
    batches of fewer row panels than threads -- the same bits as the step loop on one thread, with inputs
    read where they lie (row-strided views) and outputs written into a wider array's halves."""
    cases = []
    for batch, hidden, count in ((32, 128, 1), (32, 64, 2), (4, 96, 1), (13, 40, 2), (1, 16, 1)):
        xgs, h0s, c0s, _, packed, _, reverse = seq_case(C, rng, dtype, 7, batch, hidden, count)
        wide = np.full((7, batch, 2 * hidden), np.nan, dtype)
        outs = [wide[:, :, :hidden], wide[:, :, hidden:]][:count]
        h0s = [np.repeat(h, 2, axis=0)[::2] for h in h0s]
        cases.append((xgs, h0s, c0s, packed, outs, reverse))
    threads(1)
    wants = [seq_loop(C, *case[:4], case[5]) for case in cases]
    for nt in (1, 2, 3):
        threads(nt)
        for (xgs, h0s, c0s, packed, outs, reverse), want in zip(cases, wants):
            for o in outs:
                o[...] = np.nan
            acts, cs, tcs = C.lstm_seq(xgs, h0s, c0s, packed, outs, reverse)
            for i, (wa, wc, wt, wh) in enumerate(want):
                assert np.array_equal(acts[i], np.stack(wa)) and np.array_equal(cs[i], np.stack(wc)), nt
                assert np.array_equal(tcs[i], np.stack(wt)) and np.array_equal(outs[i], np.stack(wh)), nt


def test_lstm_seq_bad_input(K, rng):
    """Wrong kinds, counts, shapes, dtypes, byte orders, read-only or overlapping outputs: a clear error
    before any step runs."""
    xgs, h0s, c0s, ws, packed, outs, reverse = seq_case(K, rng, np.float32, 3, 4, 8, 2)
    wide = np.empty((3, 4, 32), np.float32)
    cases = [
        (TypeError, "lists or tuples", (xgs[0], h0s, c0s, packed, outs, reverse)),
        (ValueError, "as many", (xgs, h0s[:1], c0s, packed, outs, reverse)),
        (ValueError, "as many", ([], [], [], [], [], [])),
        (TypeError, "PackedMatrix", (xgs, h0s, c0s, ws, outs, reverse)),
        (ValueError, "4 \\* H", ([x[:, :, :8] for x in xgs], h0s, c0s, [K.pack(w[:, :8]) for w in ws], outs,
                                 reverse)),
        (ValueError, "3-D", (xgs, h0s, c0s, packed, [o[0] for o in outs], reverse)),
        (ValueError, "shape", (xgs, h0s, c0s, packed, [outs[0], outs[1][:2]], reverse)),
        (ValueError, "shape", ([xgs[0], xgs[1][:, :3]], h0s, c0s, packed, outs, reverse)),
        (ValueError, "shape", (xgs, h0s, [c0s[0], c0s[1][:, :5]], packed, outs, reverse)),
        (TypeError, "dtype", (xgs, [h0s[0], h0s[1].astype(np.float64)], c0s, packed, outs, reverse)),
        (TypeError, "byte order", (xgs, h0s, [c0s[0].astype(c0s[0].dtype.newbyteorder())] + c0s[1:], packed,
                                   outs, reverse)),
        (TypeError, "float32 or float64", (xgs, h0s, c0s, packed, [outs[0].astype(np.float16), outs[1]],
                                           reverse)),
        (ValueError, "shares memory", (xgs, h0s, c0s, packed, [outs[0], outs[0]], reverse)),
        (ValueError, "shares memory", (xgs, [outs[1][0], h0s[1]], c0s, packed, outs, reverse)),
        (ValueError, "shares memory", (xgs, h0s, [c0s[0], outs[0][2]], packed, outs, reverse)),
        (ValueError, "shares memory", ([wide, xgs[1]], h0s, c0s, packed, [wide[:, :, :8], wide[:, :, 8:16]],
                                       reverse)),
    ]
    if K is not _reference:  # the reference writes any layout; the kernel needs unit column stride
        cases.append((ValueError, "strides", (xgs, h0s, c0s, packed, [outs[0], wide[:, :, ::4]], reverse)))
    for error, match, args in cases:
        with pytest.raises(error, match=match):
            K.lstm_seq(*args)
        assert all(np.isnan(o).all() for o in outs)
    readonly = np.zeros((3, 4, 8), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.lstm_seq(xgs[:1], h0s[:1], c0s[:1], packed[:1], [readonly], [False])


# ---- K.lstm_seq_backward --------------------------------------------------------------------------------
def bwd_case(rng, dtype, n, batch, hidden, missing=()):
    """n steps as the backward meets them: gradients from elsewhere (None for the steps in ``missing``),
    the forward's saved activations, previous cell states and tanh(c), and W_hh (4H, H)."""
    acts = [sigmoid64(randn(rng, (batch, 4 * hidden), np.float64, 2.0)).astype(dtype) for _ in range(n)]
    for a in acts:
        a[:, 2 * hidden:3 * hidden] = 2 * a[:, 2 * hidden:3 * hidden] - 1  # the g gate is a tanh
    cps = [randn(rng, (batch, hidden), dtype) for _ in range(n)]
    tcs = [np.tanh(randn(rng, (batch, hidden), dtype)) for _ in range(n)]
    gs = [None if k in missing else randn(rng, (batch, hidden), dtype) for k in range(n)]
    w = randn(rng, (4 * hidden, hidden), dtype, 0.5 / max(hidden, 1) ** 0.5)
    return gs, acts, cps, tcs, w


def bwd_loop(K, gs, dc, acts, cps, tcs, p):
    """What lstm_seq_backward replaces: addmm (matmul) then lstm_backward, step by step."""
    d_gates, prev = [], None
    for k in range(len(acts)):
        dh = gs[0] if k == 0 else K.matmul(prev, p) if gs[k] is None else K.addmm(gs[k], prev, p)
        prev, dc = K.lstm_backward(dh, dc, acts[k], cps[k], tcs[k])
        d_gates.append(prev)
    return d_gates, dc


def bwd_float64(gs, dc, acts, cps, tcs, w):
    """The same chain in float64 NumPy, from the formulas."""
    out, dc = [], None if dc is None else dc.astype(np.float64)
    H = cps[0].shape[1]
    for k in range(len(acts)):
        dh = np.zeros(cps[k].shape) if gs[k] is None else gs[k].astype(np.float64)
        if k:
            dh = dh + out[-1] @ w.astype(np.float64)
        a = acts[k].astype(np.float64)
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        tc = tcs[k].astype(np.float64)
        dct = dh * o * (1 - tc ** 2) + (0 if dc is None else dc)
        out.append(np.concatenate([dct * g * i * (1 - i), dct * cps[k] * f * (1 - f), dct * i * (1 - g ** 2),
                                   dh * tc * o * (1 - o)], axis=1))
        dc = dct * f
    return out, dc


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,batch,hidden,missing", [(16, 32, 128, ()), (9, 32, 64, (2, 3, 8)), (5, 3, 40, (1,)),
                                                    (3, 7, 1, ()), (1, 1, 5, ()), (6, 13, 70, (5,)),
                                                    (3, 0, 5, ()), (2, 4, 0, ())])
@pytest.mark.parametrize("with_dc", [False, True])
def test_lstm_seq_backward_is_addmm_then_lstm_backward_step_by_step(K, rng, dtype, n, batch, hidden, missing,
                                                                    with_dc):
    """lstm_seq_backward runs an LSTM layer's backward through a chain of steps in one job: the bits of addmm
    (matmul where a step's h has no gradient from elsewhere) then lstm_backward, step by step, within
    tolerance of float64 NumPy; the operands unchanged."""
    gs, acts, cps, tcs, w = bwd_case(rng, dtype, n, batch, hidden, missing)
    dc = randn(rng, (batch, hidden), dtype) if with_dc else None
    p = K.pack(w)
    inputs = acts + cps + tcs + [g for g in gs if g is not None] + ([] if dc is None else [dc])
    copies = [x.copy() for x in inputs]
    places = [np.full((batch, 4 * hidden), np.nan, dtype) if k % 2 else None for k in range(n)]
    d_gates, dc_prev = K.lstm_seq_backward(gs, dc, acts, cps, tcs, p, places)
    assert all(d is place for d, place in zip(d_gates, places) if place is not None)
    want, want_dc = bwd_loop(K, gs, dc, acts, cps, tcs, p)
    exact, exact_dc = bwd_float64(gs, dc, acts, cps, tcs, w)
    tol = TOL[dtype]
    for k in range(n):
        if K is not _reference:
            assert np.array_equal(d_gates[k], want[k]), k
        np.testing.assert_allclose(d_gates[k], exact[k], rtol=tol, atol=tol)
    if K is not _reference:
        assert np.array_equal(dc_prev, want_dc)
    np.testing.assert_allclose(dc_prev, exact_dc, rtol=tol, atol=tol)
    assert all(np.array_equal(x, y) for x, y in zip(inputs, copies))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_seq_backward_threads_bitwise_identical(C, threads, rng, dtype):
    """On 1, 2 or 3 threads (an even share of the batch's rows each, also with fewer row panels than
    threads) the same bits as the step loop on one thread; gradients read where they lie (a broadcast row
    and row-strided views), the gate gradients written into a wider array's halves."""
    cases = []
    for batch, hidden in ((32, 128), (4, 96), (13, 40), (1, 16)):
        gs, acts, cps, tcs, w = bwd_case(rng, dtype, 7, batch, hidden, (3,))
        gs[1] = np.broadcast_to(gs[1][:1], gs[1].shape)
        gs[2] = np.repeat(gs[2], 2, axis=0)[::2]
        wide = np.empty((7, batch, 8 * hidden), dtype)
        cases.append((gs, randn(rng, (batch, hidden), dtype), acts, cps, tcs, C.pack(w), wide))
    threads(1)
    wants = [bwd_loop(C, *case[:6]) for case in cases]
    for nt in (1, 2, 3):
        threads(nt)
        for (gs, dc, acts, cps, tcs, p, wide), (want, want_dc) in zip(cases, wants):
            hidden = cps[0].shape[1]
            wide[...] = np.nan
            places = [wide[k, :, 4 * hidden * (k % 2):4 * hidden * (k % 2 + 1)] for k in range(7)]
            d_gates, dc_prev = C.lstm_seq_backward(gs, dc, acts, cps, tcs, p, places)
            assert all(np.array_equal(d, w) for d, w in zip(d_gates, want)), nt
            assert np.array_equal(dc_prev, want_dc), nt


def test_lstm_seq_backward_bad_input(K, rng):
    """Wrong kinds, counts, shapes, dtypes, byte orders, layouts, read-only or overlapping outputs: a clear
    error before any step runs."""
    gs, acts, cps, tcs, w = bwd_case(rng, np.float32, 3, 4, 8)
    p = K.pack(w)
    places = [np.full((4, 32), np.nan, np.float32) for _ in range(3)]
    cases = [
        (TypeError, "lists or tuples", (gs[0], None, acts, cps, tcs, p, places)),
        (ValueError, "as many", (gs[:2], None, acts, cps, tcs, p, places)),
        (ValueError, "as many", ([], None, [], [], [], p, [])),
        (TypeError, "PackedMatrix", (gs, None, acts, cps, tcs, w, places)),
        (ValueError, "4 \\* H", (gs, None, acts, cps, tcs, K.pack(w[:8]), places)),
        (ValueError, "gs\\[0\\]", ([None] + gs[1:], None, acts, cps, tcs, p, places)),
        (TypeError, "acts\\[1\\]", (gs, None, [acts[0], None, acts[2]], cps, tcs, p, places)),
        (ValueError, "2-D", (gs, None, [acts[0][None]] + acts[1:], cps, tcs, p, places)),
        (ValueError, "shape", (gs, None, acts, [cps[0], cps[1][:, :4], cps[2]], tcs, p, places)),
        (ValueError, "shape", (gs, np.zeros((4, 7), np.float32), acts, cps, tcs, p, places)),
        (ValueError, "shape", (gs, None, acts, cps, tcs, p, places, np.zeros((3, 8), np.float32))),
        (TypeError, "dtype", ([gs[0].astype(np.float64)] + gs[1:], None, acts, cps, tcs, p, places)),
        (TypeError, "byte order", (gs, None, acts, cps, [tcs[0].astype(tcs[0].dtype.newbyteorder())] + tcs[1:],
                                   p, places)),
        (ValueError, "shares memory", (gs, None, acts, cps, tcs, p, [places[0], places[0], places[2]])),
        (ValueError, "shares memory", (gs, None, acts, cps, tcs, p, [acts[1], places[1], places[2]])),
        (ValueError, "shares memory", (gs, None, acts, cps, tcs, p, places, gs[2])),
    ]
    if K is not _reference:  # the reference writes any layout; the kernel needs unit column stride
        cases.append((ValueError, "strides", (gs, None, acts, cps, tcs, p,
                                              [places[0], np.zeros((4, 64), np.float32)[:, ::2], places[2]])))
    for error, match, args in cases:
        with pytest.raises(error, match=match):
            K.lstm_seq_backward(*args)
        assert all(np.isnan(d).all() for d in places)
    readonly = np.zeros((4, 32), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.lstm_seq_backward(gs, None, acts, cps, tcs, p, [places[0], readonly, places[2]])


# ---- K.gru_seq and K.gru_seq_backward --------------------------------------------------------------------
def gru_case(K, rng, dtype, steps, batch, hidden, count):
    """Per direction: input projections (L, M, 3H), b_hh's rows (a broadcast view), h0, W_hh.T (H, 3H) and
    its packing, outputs filled with nan; the second direction runs backwards."""
    xgs = [randn(rng, (steps, batch, 3 * hidden), dtype, 1.5) for _ in range(count)]
    bhs = [np.broadcast_to(randn(rng, (3 * hidden,), dtype), (batch, 3 * hidden)) for _ in range(count)]
    h0s = [randn(rng, (batch, hidden), dtype) for _ in range(count)]
    ws = [randn(rng, (hidden, 3 * hidden), dtype, 1.0 / max(hidden, 1) ** 0.5) for _ in range(count)]
    outs = [np.full((steps, batch, hidden), np.nan, dtype) for _ in range(count)]
    return xgs, bhs, h0s, ws, [K.pack(w) for w in ws], outs, [False, True][:count]


def gru_loop(K, xgs, bhs, h0s, packed, reverse):
    """What gru_seq replaces: addmm then gru_forward, step by step."""
    results = []
    for xg, bh, h, p, rev in zip(xgs, bhs, h0s, packed, reverse):
        steps = xg.shape[0]
        hgs, acts, hs = ([None] * steps for _ in range(3))
        for s in range(steps):
            t = steps - 1 - s if rev else s
            hgs[t] = K.addmm(bh, h, p)
            acts[t], hs[t] = K.gru_forward(xg[t], hgs[t], h)
            h = hs[t]
        results.append((hgs, acts, hs))
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps,batch,hidden", [(6, 32, 128), (5, 3, 40), (3, 7, 1), (1, 1, 5), (4, 33, 64),
                                                (3, 0, 4), (2, 4, 0)])
@pytest.mark.parametrize("count", [1, 2])
def test_gru_seq_is_addmm_then_gru_forward_step_by_step(K, rng, dtype, steps, batch, hidden, count):
    """gru_seq runs a GRU layer's forward: the bits of addmm then gru_forward step by step, each step within
    tolerance of float64 NumPy from the step before's state; the operands unchanged."""
    xgs, bhs, h0s, ws, packed, outs, reverse = gru_case(K, rng, dtype, steps, batch, hidden, count)
    copies = [x.copy() for x in xgs + h0s]
    hgs, acts = K.gru_seq(xgs, bhs, h0s, packed, outs, reverse)
    want = gru_loop(K, xgs, bhs, h0s, packed, reverse)
    tol = TOL[dtype]
    for i in range(count):
        for s in range(steps):
            t = steps - 1 - s if reverse[i] else s
            if K is not _reference:
                for got, w in zip((hgs[i][t], acts[i][t], outs[i][t]), (x[t] for x in want[i])):
                    assert np.array_equal(got, w), (i, t)
            h = h0s[i] if s == 0 else outs[i][t + 1 if reverse[i] else t - 1]
            hg = bhs[i].astype(np.float64) + h.astype(np.float64) @ ws[i].astype(np.float64)
            x_r, x_z, x_n = np.split(xgs[i][t].astype(np.float64), 3, axis=1)
            h_r, h_z, h_n = np.split(hg, 3, axis=1)
            r, z = sigmoid64(x_r + h_r), sigmoid64(x_z + h_z)
            np.testing.assert_allclose(hgs[i][t], hg, rtol=tol, atol=tol)
            np.testing.assert_allclose(outs[i][t], (1 - z) * np.tanh(x_n + r * h_n) + z * h, rtol=tol, atol=tol)
    assert all(np.array_equal(x, y) for x, y in zip(xgs + h0s, copies))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_seq_threads_bitwise_identical(C, threads, rng, dtype):
    """On 1, 2 or 3 threads the same bits as the step loop on one thread (row shares as lstm_seq's)."""
    cases = [gru_case(C, rng, dtype, 7, batch, hidden, count)
             for batch, hidden, count in ((32, 128, 1), (32, 64, 2), (4, 96, 1), (13, 40, 2), (1, 16, 1))]
    threads(1)
    wants = [gru_loop(C, xgs, bhs, h0s, packed, reverse) for xgs, bhs, h0s, _, packed, _, reverse in cases]
    for nt in (1, 2, 3):
        threads(nt)
        for (xgs, bhs, h0s, _, packed, outs, reverse), want in zip(cases, wants):
            for o in outs:
                o[...] = np.nan
            hgs, acts = C.gru_seq(xgs, bhs, h0s, packed, outs, reverse)
            for i, (whg, wact, wh) in enumerate(want):
                assert np.array_equal(hgs[i], np.stack(whg)) and np.array_equal(acts[i], np.stack(wact)), nt
                assert np.array_equal(outs[i], np.stack(wh)), nt


def test_gru_seq_bad_input(K, rng):
    """As lstm_seq's checks, for the GRU's operands (b_hh's rows among them)."""
    xgs, bhs, h0s, ws, packed, outs, reverse = gru_case(K, rng, np.float32, 3, 4, 8, 2)
    cases = [
        (TypeError, "lists or tuples", (xgs, bhs[0], h0s, packed, outs, reverse)),
        (ValueError, "as many", (xgs, bhs[:1], h0s, packed, outs, reverse)),
        (TypeError, "PackedMatrix", (xgs, bhs, h0s, ws, outs, reverse)),
        (ValueError, "3 \\* H", (xgs, bhs, h0s, [K.pack(w[:, :8]) for w in ws], outs, reverse)),
        (ValueError, "shape", (xgs, [bhs[0], bhs[1][:, :5]], h0s, packed, outs, reverse)),
        (ValueError, "shape", ([xgs[0], xgs[1][:, :, :9]], bhs, h0s, packed, outs, reverse)),
        (TypeError, "dtype", (xgs, [bhs[0].astype(np.float64), bhs[1]], h0s, packed, outs, reverse)),
        (ValueError, "shares memory", (xgs, bhs, [outs[0][1], h0s[1]], packed, outs, reverse)),
    ]
    for error, match, args in cases:
        with pytest.raises(error, match=match):
            K.gru_seq(*args)
        assert all(np.isnan(o).all() for o in outs)


def gru_bwd_case(rng, dtype, n, batch, hidden, missing=()):
    """n GRU steps as the backward meets them: gradients from elsewhere, the saved activations (r, z, n),
    hg's n section and the previous states, and W_hh (3H, H)."""
    acts = [sigmoid64(randn(rng, (batch, 3 * hidden), np.float64, 2.0)).astype(dtype) for _ in range(n)]
    for a in acts:
        a[:, 2 * hidden:] = 2 * a[:, 2 * hidden:] - 1  # n is a tanh
    hns = [randn(rng, (batch, hidden), dtype) for _ in range(n)]
    hps = [randn(rng, (batch, hidden), dtype) for _ in range(n)]
    gs = [None if k in missing else randn(rng, (batch, hidden), dtype) for k in range(n)]
    return gs, acts, hns, hps, randn(rng, (3 * hidden, hidden), dtype, 0.5 / max(hidden, 1) ** 0.5)


def gru_bwd_loop(K, gs, acts, hns, hps, p):
    """The engine's node-by-node order: a state's gradient is (from elsewhere + through z * h) + the product."""
    d_xgs, d_hgs, direct = [], [], None
    for k in range(len(acts)):
        dh = gs[0] if k == 0 else K.addmm(direct if gs[k] is None else gs[k] + direct, d_hgs[-1], p)
        d_xg, d_hg, direct = K.gru_backward(dh, acts[k], hns[k], hps[k])
        d_xgs.append(d_xg)
        d_hgs.append(d_hg)
    return d_xgs, d_hgs, direct


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,batch,hidden,missing", [(16, 32, 128, ()), (9, 32, 64, (2, 3, 8)), (5, 3, 40, (1,)),
                                                    (3, 7, 1, ()), (1, 1, 5, ()), (3, 0, 5, ()), (2, 4, 0, ())])
def test_gru_seq_backward_is_the_engines_order_step_by_step(K, rng, dtype, n, batch, hidden, missing):
    """gru_seq_backward: the bits of the engine's own backward of the steps (addmm then gru_backward, each
    state's gradient summed in the engine's order), within tolerance of float64 NumPy from the formulas."""
    gs, acts, hns, hps, w = gru_bwd_case(rng, dtype, n, batch, hidden, missing)
    p = K.pack(w)
    d_xgs, d_hgs, direct = K.gru_seq_backward(gs, acts, hns, hps, p, [None] * n, [None] * n)
    want = gru_bwd_loop(K, gs, acts, hns, hps, p)
    tol = TOL[dtype]
    if K is not _reference:
        assert all(np.array_equal(a, b) for a, b in zip(d_xgs + d_hgs + [direct], want[0] + want[1] + [want[2]]))
    H, dhg64, direct64 = hidden, None, None
    for k in range(n):
        dh = np.zeros((batch, H)) if gs[k] is None else gs[k].astype(np.float64)
        if k:
            dh = dh + direct64 + dhg64 @ w.astype(np.float64)
        a = acts[k].astype(np.float64)
        r, z, nn_ = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        dn = dh * (1 - z) * (1 - nn_ ** 2)
        dr = dn * hns[k] * r * (1 - r)
        dz = (dh * hps[k] - dh * nn_) * z * (1 - z)
        dhg64 = np.concatenate([dr, dz, dn * r], axis=1)
        np.testing.assert_allclose(d_xgs[k], np.concatenate([dr, dz, dn], axis=1), rtol=tol, atol=tol)
        np.testing.assert_allclose(d_hgs[k], dhg64, rtol=tol, atol=tol)
        direct64 = dh * z
    if n:
        np.testing.assert_allclose(direct, direct64, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_seq_backward_threads_bitwise_identical(C, threads, rng, dtype):
    cases = []
    for batch, hidden in ((32, 128), (4, 96), (13, 40), (1, 16)):
        gs, acts, hns, hps, w = gru_bwd_case(rng, dtype, 7, batch, hidden, (3,))
        gs[1] = np.broadcast_to(gs[1][:1], gs[1].shape)
        cases.append((gs, acts, hns, hps, C.pack(w)))
    threads(1)
    wants = [gru_bwd_loop(C, *case) for case in cases]
    for nt in (1, 2, 3):
        threads(nt)
        for case, want in zip(cases, wants):
            got = C.gru_seq_backward(*case, [None] * 7, [None] * 7)
            assert all(np.array_equal(a, b) for a, b in zip(list(got[0]) + list(got[1]) + [got[2]],
                                                          want[0] + want[1] + [want[2]])), nt


def test_gru_seq_backward_bad_input(K, rng):
    gs, acts, hns, hps, w = gru_bwd_case(rng, np.float32, 3, 4, 8)
    p = K.pack(w)
    none = [None] * 3
    cases = [
        (TypeError, "lists or tuples", (gs[0], acts, hns, hps, p, none, none)),
        (ValueError, "as many", (gs, acts, hns[:2], hps, p, none, none)),
        (TypeError, "PackedMatrix", (gs, acts, hns, hps, w, none, none)),
        (ValueError, "3 \\* H", (gs, acts, hns, hps, K.pack(w[:8]), none, none)),
        (ValueError, "gs\\[0\\]", ([None] + gs[1:], acts, hns, hps, p, none, none)),
        (ValueError, "shape", (gs, acts, [hns[0], hns[1][:, :3], hns[2]], hps, p, none, none)),
        (TypeError, "dtype", (gs, acts, hns, [hps[0].astype(np.float64)] + hps[1:], p, none, none)),
        (ValueError, "shares memory", (gs, acts, hns, hps, p, [acts[0], None, None], none)),
        (ValueError, "shares memory", (gs, acts, hns, hps, p, none, none, hps[1])),
    ]
    for error, match, args in cases:
        with pytest.raises(error, match=match):
            K.gru_seq_backward(*args)




@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_handed_between_threads_keep_the_bits(C, threads, rng, dtype):
    """A thread that has finished its rows takes the upper half of another's at that thread's next step
    (cores of unequal speed, threads woken late): every row still runs its steps in order with the same
    arithmetic, so the bits are those of one thread.  Many repetitions on more threads than cores, so that
    rows do change hands -- also just before their owner finishes, where handed-over rows were once lost."""
    steps, batch, hidden = 12, 64, 64  # (a step of 1 MFLOP or more is shared between threads)
    lstm = seq_case(C, rng, dtype, steps, batch, hidden, 2)
    gru = gru_case(C, rng, dtype, steps, batch, hidden, 2)
    threads(1)
    want_lstm = seq_loop(C, lstm[0], lstm[1], lstm[2], lstm[4], lstm[6])
    want_gru = gru_loop(C, gru[0], gru[1], gru[2], gru[4], gru[6])
    for nt in (2, 3, 4):
        threads(nt)
        for _ in range(25):
            acts, cs, _ = C.lstm_seq(lstm[0], lstm[1], lstm[2], lstm[4], lstm[5], lstm[6])
            for i, (wa, wc, _, wh) in enumerate(want_lstm):
                assert np.array_equal(acts[i], np.stack(wa)) and np.array_equal(cs[i], np.stack(wc)), nt
                assert np.array_equal(lstm[5][i], np.stack(wh)), nt
            hgs, gacts = C.gru_seq(gru[0], gru[1], gru[2], gru[4], gru[5], gru[6])
            for i, (whg, wact, wh) in enumerate(want_gru):
                assert np.array_equal(hgs[i], np.stack(whg)) and np.array_equal(gacts[i], np.stack(wact)), nt
                assert np.array_equal(gru[5][i], np.stack(wh)), nt


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_rows_handed_between_threads_keep_their_state(C, threads, rng, dtype):
    """The LSTM's and GRU's backward jobs keep a row's state in their threads' scratch (the cell state's
    gradient; the direct part of h's): rows handed to another thread take it along, so the bits are those
    of one thread, over many repetitions on more threads than cores."""
    steps, batch, hidden = 12, 64, 64  # (a step of 2 MFLOP or more is shared between threads)
    gs, acts, cps, tcs, w = bwd_case(rng, dtype, steps, batch, hidden, (4,))
    dc, p = randn(rng, (batch, hidden), dtype), C.pack(w)
    ggs, gacts, hns, hps, gw = gru_bwd_case(rng, dtype, steps, batch, hidden, (4,))
    gp = C.pack(gw)
    threads(1)
    want, want_dc = bwd_loop(C, gs, dc, acts, cps, tcs, p)
    gwant = gru_bwd_loop(C, ggs, gacts, hns, hps, gp)
    for nt in (2, 3, 4):
        threads(nt)
        for _ in range(25):
            d_gates, dc_prev = C.lstm_seq_backward(gs, dc, acts, cps, tcs, p, [None] * steps)
            assert all(np.array_equal(d, x) for d, x in zip(d_gates, want)), nt
            assert np.array_equal(dc_prev, want_dc), nt
            got = C.gru_seq_backward(ggs, gacts, hns, hps, gp, [None] * steps, [None] * steps)
            assert all(np.array_equal(a, b) for a, b in zip(list(got[0]) + list(got[1]) + [got[2]],
                                                          gwant[0] + gwant[1] + [gwant[2]])), nt
