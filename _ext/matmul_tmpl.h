/* GEMM driver, instantiated by matmul.c for one element type.
 * Expects T (element type), SFX (f32/f64), the portable blocking PNR, PMC, PKC, PNC and the SIMD paths'
 * CFG_AVX2, CFG_AVX512 to be defined.
 *
 * BLIS-style: for each NC-wide column block and KC-deep slice, B is packed into NR-wide panels; for each
 * MC-tall row block A is packed into MR-tall panels; the micro-kernel multiplies one A panel by one B panel
 * with the MR x NR tile of C held in registers.  Small products read an operand in place when its layout
 * already suits the micro-kernel (see gemm_serial).  Every element of C goes through the same FMA sequence
 * whatever its tile position, the packing, the block split or the thread count, so results are bitwise
 * reproducible; K is never split across threads.
 */
#define MG_CAT_(a, b) a##_##b
#define MG_CAT(a, b) MG_CAT_(a, b)
#define FN(name) MG_CAT(name, SFX)

typedef void (*FN(ukr_fn))(MG_UKR_ARGS(T));
typedef void (*FN(pack_t_fn))(MG_PACK_T_ARGS(T));

typedef struct {
    mg_int mr, nr, mc, kc, nc;
    FN(ukr_fn) ukr;
    FN(pack_t_fn) pack_t;
    int direct_b; /* the micro-kernel can read an unpacked, row-major B */
} FN(gemm_cfg);

#define PMR 4

static void FN(ukr_portable)(MG_UKR_ARGS(T))
{
    T acc[PMR][PNR] = {{0}};
    for (mg_int k = 0; k < kc; ++k)
        for (mg_int i = 0; i < mr; ++i)
            for (int j = 0; j < PNR; ++j)
                acc[i][j] += a[i * ars + k * aks] * b[k * bks + j];
    for (mg_int i = 0; i < mr; ++i)
        for (mg_int j = 0; j < nr; ++j) {
            T *p = c + i * rsc + j * csc;
            *p = overwrite ? acc[i][j] : *p + acc[i][j];
        }
}

/* Panel of an operand whose k dimension is contiguous: read each source line along k. */
static void FN(pack_t_portable)(MG_PACK_T_ARGS(T))
{
    for (mg_int j = 0; j < w; ++j) {
        const T *s = src + j * sw;
        for (mg_int k = 0; k < kc; ++k)
            dst[k * W + j] = s[k];
    }
    for (mg_int k = 0; w < W && k < kc; ++k)
        for (mg_int j = w; j < W; ++j)
            dst[k * W + j] = 0;
}

/* Per path, indexed by MG_ISA_*: MR x NR tile, MC, KC, NC blocking, micro-kernel, transposing packer. */
static const FN(gemm_cfg) FN(gemm_cfgs)[MG_ISA_COUNT] = {
    {PMR, PNR, PMC, PKC, PNC, FN(ukr_portable), FN(pack_t_portable), 0},
#if MG_X86
    CFG_AVX2,
    CFG_AVX512,
#endif
};

/* dst[k*W + j] = src[k*sk + j*sw] for j < w, zero for w <= j < W: one packed panel, kc deep. */
static void FN(pack_panel)(const FN(gemm_cfg) *g, mg_int kc, mg_int w, mg_int W, const T *src, mg_int sk,
                           mg_int sw, T *dst)
{
    if (sk == 1 && sw != 1) {
        g->pack_t(kc, w, W, src, sw, dst);
        return;
    }
    for (mg_int k = 0; k < kc; ++k) {
        const T *s = src + k * sk;
        T *d = dst + k * W;
        if (sw == 1)
            for (mg_int j = 0; j < w; ++j)
                d[j] = s[j];
        else
            for (mg_int j = 0; j < w; ++j)
                d[j] = s[j * sw];
        for (mg_int j = w; j < W; ++j)
            d[j] = 0;
    }
}

static void FN(gemm_serial)(const FN(gemm_cfg) *g, mg_int M, mg_int N, mg_int K,
                            const T *A, mg_int sam, mg_int sak, const T *B, mg_int sbk, mg_int sbn,
                            T *C, mg_int scm, mg_int scn, int accumulate, T *abuf, T *bbuf)
{
    const mg_int mr = g->mr, nr = g->nr;
    /* Skip packing when it would not pay: A in one block with rows contiguous along k, or B row-major
     * with few rows of A to reuse each packed panel. */
    const int direct_a = sak == 1 && M <= g->mc && K <= g->kc;
    const int direct_b = g->direct_b && sbn == 1 && M <= MG_DIRECT_B_ROWS;
    const mg_int ars = direct_a ? sam : 1, aks = direct_a ? 1 : mr, bks = direct_b ? sbk : nr;
    for (mg_int jc = 0; jc < N; jc += g->nc) {
        const mg_int nc = N - jc < g->nc ? N - jc : g->nc;
        for (mg_int pc = 0; pc < K; pc += g->kc) {
            const mg_int kc = K - pc < g->kc ? K - pc : g->kc;
            const int overwrite = pc == 0 && !accumulate;
            for (mg_int jr = 0; !direct_b && jr < nc; jr += nr)
                FN(pack_panel)(g, kc, nc - jr < nr ? nc - jr : nr, nr, B + pc * sbk + (jc + jr) * sbn, sbk,
                               sbn, bbuf + jr * kc);
            for (mg_int ic = 0; ic < M; ic += g->mc) {
                const mg_int mc = M - ic < g->mc ? M - ic : g->mc;
                for (mg_int ir = 0; !direct_a && ir < mc; ir += mr)
                    FN(pack_panel)(g, kc, mc - ir < mr ? mc - ir : mr, mr, A + (ic + ir) * sam + pc * sak,
                                   sak, sam, abuf + ir * kc);
                for (mg_int jr = 0; jr < nc; jr += nr) {
                    const T *bp = direct_b ? B + pc * sbk + (jc + jr) : bbuf + jr * kc;
                    for (mg_int ir = 0; ir < mc; ir += mr) {
                        const T *ap = direct_a ? A + (ic + ir) * sam + pc : abuf + ir * kc;
                        g->ukr(kc, ap, ars, aks, bp, bks, C + (ic + ir) * scm + (jc + jr) * scn, scm, scn,
                               mc - ir < mr ? mc - ir : mr, nc - jr < nr ? nc - jr : nr, overwrite);
                    }
                }
            }
        }
    }
}

static mg_int FN(round_up)(mg_int x, mg_int m) { return (x + m - 1) / m * m; }

int FN(mg_matmul)(mg_int batch, mg_int M, mg_int N, mg_int K,
                  const T *A, mg_int sab, mg_int sam, mg_int sak,
                  const T *B, mg_int sbb, mg_int sbk, mg_int sbn,
                  T *C, mg_int scb, mg_int scm, mg_int scn, int accumulate)
{
    if (batch <= 0 || M <= 0 || N <= 0)
        return 0;
    if (K <= 0) {
        if (!accumulate)
            for (mg_int b = 0; b < batch; ++b)
                for (mg_int i = 0; i < M; ++i)
                    for (mg_int j = 0; j < N; ++j)
                        C[b * scb + i * scm + j * scn] = 0;
        return 0;
    }
    if (scn != 1 && scm == 1) {
        /* C is column-major: compute C^T = B^T A^T so the micro-kernel writes contiguous rows. */
        const T *tp = A; A = B; B = tp;
        mg_int t = M; M = N; N = t;
        t = sab; sab = sbb; sbb = t;
        t = sam; sam = sbn; sbn = t;
        t = sak; sak = sbk; sbk = t;
        t = scm; scm = scn; scn = t;
    }
    if (batch > 1 && sbb == 0) {
        /* Every product shares B: treat the batch as extra rows of one product when A and C allow it. */
        if (M == 1) {
            sam = sab;
            scm = scb;
            M = batch;
            batch = 1;
        } else if (sab == M * sam && scb == M * scm) {
            M *= batch;
            batch = 1;
        }
    }

    const FN(gemm_cfg) *g = &FN(gemm_cfgs)[mg_active_isa()];
    const double flops = 2.0 * (double)batch * (double)M * (double)N * (double)K;
    const int nt = flops >= MG_PARALLEL_FLOPS ? mg_active_threads() : 1;

    /* Each task is one product, or one of `parts` slices of a product along M or N (whichever has more
     * micro-tiles), so threads stay busy when the batch is smaller than (or not a multiple of) nt. */
    const mg_int parts = batch % nt ? nt : 1;
    const mg_int nb_m = (M + g->mr - 1) / g->mr, nb_n = (N + g->nr - 1) / g->nr;
    const int split_n = nb_n >= nb_m;
    const mg_int unit = split_n ? g->nr : g->mr;
    const mg_int chunk = ((split_n ? nb_n : nb_m) + parts - 1) / parts * unit;
    const mg_int ntasks = batch * parts;

    const mg_int kc = K < g->kc ? K : g->kc;
    const mg_int a_len = FN(round_up)(FN(round_up)(M < g->mc ? M : g->mc, g->mr) * kc, 64);
    const mg_int b_len = FN(round_up)(FN(round_up)(N < g->nc ? N : g->nc, g->nr) * kc, 64);
    T *buf = aligned_alloc(64, (size_t)(a_len + b_len) * (size_t)nt * sizeof(T));
    if (!buf)
        return -1;

    if (nt == 1) {
        /* No parallel region at all: even an inactive one costs most of a microsecond. */
        for (mg_int b = 0; b < batch; ++b)
            FN(gemm_serial)(g, M, N, K, A + b * sab, sam, sak, B + b * sbb, sbk, sbn, C + b * scb, scm, scn,
                            accumulate, buf, buf + a_len);
        free(buf);
        return 0;
    }
    MG_OMP(omp parallel for num_threads(nt) schedule(static))
    for (mg_int t = 0; t < ntasks; ++t) {
        const mg_int b = t / parts, lo = t % parts * chunk;
        const mg_int dim = split_n ? N : M, hi = lo + chunk < dim ? lo + chunk : dim;
        if (lo >= hi)
            continue;
        T *abuf = buf + (a_len + b_len) * MG_THREAD_ID();
        const T *Ab = A + b * sab, *Bb = B + b * sbb;
        T *Cb = C + b * scb;
        if (split_n)
            FN(gemm_serial)(g, M, hi - lo, K, Ab, sam, sak, Bb + lo * sbn, sbk, sbn, Cb + lo * scn, scm, scn,
                            accumulate, abuf, abuf + a_len);
        else
            FN(gemm_serial)(g, hi - lo, N, K, Ab + lo * sam, sam, sak, Bb, sbk, sbn, Cb + lo * scm, scm, scn,
                            accumulate, abuf, abuf + a_len);
    }
    free(buf);
    return 0;
}

#undef PMR
#undef FN
#undef MG_CAT
#undef MG_CAT_
