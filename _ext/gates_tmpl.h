/* The gated cells' rows for one element type and one path: included by gates.c with T (float / double),
 * SFX (f32 / f64), ISA (a name) and TARGET (that path's function attributes) defined.  Each function
 * computes one batch row r of its job from the serial kernels of the job's path (f) and plain IEEE products
 * and sums, one statement per rounding (the compiler vectorises them for the path, never fusing them). */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(x) CAT(x, SFX)
#define NAME(x) CAT(CAT(x, SFX), ISA)
#define ROW_IN(k) ((const T *)j->in[k] + r * j->ins[k])
#define ROW_OUT(k) ((T *)j->out[k] + r * j->outs[k])
#ifdef GATE_VEC
/* the lanes of the next vector of a row that has `left` elements to go */
#define GATE_LANES(left) ((left) >= GATE_W ? (GATE_M)-1 : (GATE_M)((1u << (left)) - 1u))
#endif

/* in: gates (i, f, g, o), c_prev; out: act, c, tanh_c, h */
TARGET static void NAME(lstm_forward_row)(const gate_job *j, mg_int r)
{
    const mg_int H = j->H;
    const T *gates = ROW_IN(0), *cp = ROW_IN(1);
    T *act = ROW_OUT(0), *c = ROW_OUT(1), *tc = ROW_OUT(2), *h = ROW_OUT(3);
    j->f.FN(sig)(2 * H, gates, act);
    j->f.FN(tanh)(H, gates + 2 * H, act + 2 * H);
    j->f.FN(sig)(H, gates + 3 * H, act + 3 * H);
    const T *i = act, *f = act + H, *g = act + 2 * H, *o = act + 3 * H;
    for (mg_int k = 0; k < H; ++k) {
        const T fc = f[k] * cp[k], ig = i[k] * g[k];
        c[k] = fc + ig;
    }
    j->f.FN(tanh)(H, c, tc);
    for (mg_int k = 0; k < H; ++k)
        h[k] = o[k] * tc[k];
}

/* in: dh, dc (NULL: none), act, c_prev, tanh_c; out: d_gates, dc_prev.  The gate gradient's g section holds
 * the cell state's whole gradient dct until it is needed no more. */
TARGET static void NAME(lstm_backward_row)(const gate_job *j, mg_int r)
{
    const mg_int H = j->H;
    const T *dh = ROW_IN(0), *dc = j->in[1] ? ROW_IN(1) : NULL, *act = ROW_IN(2), *cp = ROW_IN(3);
    const T *tc = ROW_IN(4);
    const T *i = act, *f = act + H, *g = act + 2 * H, *o = act + 3 * H;
    T *dg = ROW_OUT(0), *dcp = ROW_OUT(1);
    T *di = dg, *df = dg + H, *dct = dg + 2 * H, *dgg = dg + 2 * H, *dout = dg + 3 * H;
#ifdef GATE_VEC
    /* One pass, every value the product or sum the loops below round, in their order, and the path's
     * derivatives as its kernels compute them (tanh's g * (1 - y*y) with one FMA, sigmoid's (g*y) * (1 - y)):
     * the same bits, with each operand read and each result written once instead of a dozen passes. */
    const GATE_V one = GV_(set1)(1);
    for (mg_int k = 0; k < H; k += GATE_W) {
        const GATE_M m = GATE_LANES(H - k);
        const GATE_V vdh = GV_(maskz_loadu)(m, dh + k), vtc = GV_(maskz_loadu)(m, tc + k);
        const GATE_V vi = GV_(maskz_loadu)(m, i + k), vf = GV_(maskz_loadu)(m, f + k);
        const GATE_V vg = GV_(maskz_loadu)(m, g + k), vo = GV_(maskz_loadu)(m, o + k);
        GATE_V d = GV_(mul)(GV_(mul)(vdh, vo), GV_(fnmadd)(vtc, vtc, one));
        if (dc)
            d = GV_(add)(GV_(maskz_loadu)(m, dc + k), d);
        GV_(mask_storeu)(dcp + k, m, GV_(mul)(d, vf));
        const GATE_V vcp = GV_(maskz_loadu)(m, cp + k);
        GV_(mask_storeu)(df + k, m, GV_(mul)(GV_(mul)(GV_(mul)(d, vcp), vf), GV_(sub)(one, vf)));
        GV_(mask_storeu)(di + k, m, GV_(mul)(GV_(mul)(GV_(mul)(d, vg), vi), GV_(sub)(one, vi)));
        GV_(mask_storeu)(dout + k, m, GV_(mul)(GV_(mul)(GV_(mul)(vdh, vtc), vo), GV_(sub)(one, vo)));
        GV_(mask_storeu)(dgg + k, m, GV_(mul)(GV_(mul)(d, vi), GV_(fnmadd)(vg, vg, one)));
    }
    return;
#endif
    for (mg_int k = 0; k < H; ++k)
        dct[k] = dh[k] * o[k];
    j->f.FN(tanh_bw)(H, dct, tc, dct);
    if (dc)
        for (mg_int k = 0; k < H; ++k)
            dct[k] = dc[k] + dct[k];
    /* one output per loop: GCC vectorises none of these four written as one loop */
    for (mg_int k = 0; k < H; ++k)
        dcp[k] = dct[k] * f[k];
    for (mg_int k = 0; k < H; ++k)
        df[k] = dct[k] * cp[k];
    for (mg_int k = 0; k < H; ++k)
        di[k] = dct[k] * g[k];
    for (mg_int k = 0; k < H; ++k)
        dout[k] = dh[k] * tc[k];
    for (mg_int k = 0; k < H; ++k)
        dgg[k] = dct[k] * i[k]; /* dct is read for the last time */
    j->f.FN(sig_bw)(2 * H, dg, act, dg);
    j->f.FN(tanh_bw)(H, dgg, g, dgg);
    j->f.FN(sig_bw)(H, dout, o, dout);
}

/* in: xg (r, z, n), hg (r, z, n), h_prev; out: act (r, z, n), h */
TARGET static void NAME(gru_forward_row)(const gate_job *j, mg_int r)
{
    const mg_int H = j->H;
    const T *xg = ROW_IN(0), *hg = ROW_IN(1), *hp = ROW_IN(2);
    T *act = ROW_OUT(0), *h = ROW_OUT(1);
    for (mg_int k = 0; k < 2 * H; ++k)
        act[k] = xg[k] + hg[k];
    j->f.FN(sig)(2 * H, act, act);
    for (mg_int k = 0; k < H; ++k) {
        const T rh = act[k] * hg[2 * H + k];
        act[2 * H + k] = xg[2 * H + k] + rh;
    }
    j->f.FN(tanh)(H, act + 2 * H, act + 2 * H);
    const T *z = act + H, *n = act + 2 * H;
    for (mg_int k = 0; k < H; ++k) {
        const T zc = (T)1 - z[k];
        const T a = zc * n[k], b = z[k] * hp[k];
        h[k] = a + b;
    }
}

/* in: dh, act (r, z, n), hn (the n section of hg), h_prev; out: d_xg, d_hg, dh_prev */
TARGET static void NAME(gru_backward_row)(const gate_job *j, mg_int r)
{
    const mg_int H = j->H;
    const T *dh = ROW_IN(0), *act = ROW_IN(1), *hn = ROW_IN(2), *hp = ROW_IN(3);
    const T *rr = act, *z = act + H, *n = act + 2 * H;
    T *dx = ROW_OUT(0), *dhg = ROW_OUT(1), *dhp = ROW_OUT(2);
#ifdef GATE_VEC
    /* one pass, as the LSTM's */
    const GATE_V one = GV_(set1)(1);
    for (mg_int k = 0; k < H; k += GATE_W) {
        const GATE_M m = GATE_LANES(H - k);
        const GATE_V vdh = GV_(maskz_loadu)(m, dh + k), vr = GV_(maskz_loadu)(m, rr + k);
        const GATE_V vz = GV_(maskz_loadu)(m, z + k), vn = GV_(maskz_loadu)(m, n + k);
        const GATE_V dn = GV_(mul)(GV_(mul)(vdh, GV_(sub)(one, vz)), GV_(fnmadd)(vn, vn, one));
        const GATE_V dr = GV_(mul)(GV_(mul)(GV_(mul)(dn, GV_(maskz_loadu)(m, hn + k)), vr), GV_(sub)(one, vr));
        const GATE_V dz0 = GV_(sub)(GV_(mul)(vdh, GV_(maskz_loadu)(m, hp + k)), GV_(mul)(vdh, vn));
        const GATE_V dz = GV_(mul)(GV_(mul)(dz0, vz), GV_(sub)(one, vz));
        GV_(mask_storeu)(dx + k, m, dr);
        GV_(mask_storeu)(dx + H + k, m, dz);
        GV_(mask_storeu)(dx + 2 * H + k, m, dn);
        GV_(mask_storeu)(dhg + k, m, dr);
        GV_(mask_storeu)(dhg + H + k, m, dz);
        GV_(mask_storeu)(dhg + 2 * H + k, m, GV_(mul)(dn, vr));
        GV_(mask_storeu)(dhp + k, m, GV_(mul)(vdh, vz));
    }
    return;
#endif
    for (mg_int k = 0; k < H; ++k) {
        const T zc = (T)1 - z[k];
        dx[2 * H + k] = dh[k] * zc;
    }
    j->f.FN(tanh_bw)(H, dx + 2 * H, n, dx + 2 * H);
    /* one output per loop, as in the LSTM's backward */
    for (mg_int k = 0; k < H; ++k)
        dhg[2 * H + k] = dx[2 * H + k] * rr[k];
    for (mg_int k = 0; k < H; ++k)
        dx[k] = dx[2 * H + k] * hn[k];
    for (mg_int k = 0; k < H; ++k) {
        const T a = dh[k] * hp[k], b = dh[k] * n[k];
        dx[H + k] = a - b;
    }
    for (mg_int k = 0; k < H; ++k)
        dhp[k] = dh[k] * z[k];
    j->f.FN(sig_bw)(2 * H, dx, act, dx);
    memcpy(dhg, dx, (size_t)(2 * H) * sizeof(T));
}

static void (*const NAME(gate_rows)[MG_GATE_KINDS])(const gate_job *, mg_int) = {
    NAME(lstm_forward_row), NAME(lstm_backward_row), NAME(gru_forward_row), NAME(gru_backward_row)};

#undef CAT_
#undef CAT
#undef NAME
#undef FN
#undef ROW_IN
#undef ROW_OUT
#undef GATE_LANES
