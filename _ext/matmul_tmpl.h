/* GEMM driver, instantiated by matmul.c for one element type.
 * Expects T (element type), SFX (f32/f64) and the per-path configurations CFG_PORTABLE, CFG_AVX2, CFG_AVX512.
 *
 * BLIS-style, with the loops ordered for a micro-kernel that broadcasts A and streams wide rows of B:
 *
 *   for each NC-wide column block of B, for each KC-deep slice of K:
 *       pack B[pc:pc+kc, jc:jc+nc] into NR-wide panels (about half of L2), unless it is read in place
 *       for each MR-tall row panel of A (packed only when A is not row-major; a few KB, it stays in L1):
 *           for each NR-wide panel of B: micro-kernel, C[ir:ir+mr, jc+jr:jc+jr+nr] (=|+=) A-panel @ B-panel
 *
 * Every element of C goes through the same FMA sequence (k in order, KC slices added in order) whatever its
 * tile position, the packing, the block split or the thread count, so results are bitwise reproducible;
 * K is never split across threads.
 */
#define MG_CAT_(a, b) a##_##b
#define MG_CAT(a, b) MG_CAT_(a, b)
#define FN(name) MG_CAT(name, SFX)

typedef void (*FN(ukr_fn))(MG_UKR_ARGS(T));
typedef void (*FN(pack_fn))(MG_PACK_ARGS(T));
typedef void (*FN(pack_rows_fn))(MG_PACK_ROWS_ARGS(T));
typedef void (*FN(epi_fn))(mg_int n, const T *x, T *y);

typedef struct {
    mg_int mr, nr, kc, nc;
    FN(ukr_fn) ukr;
    FN(pack_fn) pack_t; /* panel of an operand contiguous along k (a transposed B) */
    FN(pack_fn) pack_n; /* panel of an operand contiguous along the panel's width (a row-major B) */
    mg_int direct_b_rows; /* up to this many rows of A, a row-major B is read in place (0: never) ... */
    mg_int direct_b_span; /* ... and, if not 0, only while M rows of B's row stride span at most this many
                           * bytes, and one row at most 1 KB (FN(b_in_place)) */
    FN(pack_rows_fn) pack_rows; /* panel of an operand given as a table of row pointers (mg_matmul_rows) */
    mg_int a_group; /* an A whose rows are contiguous along M is packed this many panels at a time (FN(pack_a_group)) */
    mg_int a_group_stride; /* ... always (0), or only when its columns lie a multiple of this many bytes apart */
} FN(gemm_cfg);

#define PMR 4
#define PNR 16

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
            *p = ci ? ci[i * rsi + j] + acc[i][j] : overwrite ? acc[i][j] : *p + acc[i][j];
        }
}

/* dst[k*W + j] = src[k*sk + j*sw] for j < w, zero for w <= j < W: one packed panel, kc deep. */
static void FN(pack_portable)(MG_PACK_ARGS(T))
{
    for (mg_int k = 0; k < kc; ++k) {
        const T *s = src + k * sk;
        T *d = dst + k * W;
        for (mg_int j = 0; j < w; ++j)
            d[j] = s[j * sw];
        for (mg_int j = w; j < W; ++j)
            d[j] = 0;
    }
}

/* dst[k*W + j] = rows[k][off + j] for j < w, zero for w <= j < W: one panel of an operand whose rows are
 * scattered (one row pointer per k). */
static void FN(pack_rows_portable)(MG_PACK_ROWS_ARGS(T))
{
    for (mg_int k = 0; k < kc; ++k) {
        const T *s = rows[k] + off;
        T *d = dst + k * W;
        for (mg_int j = 0; j < w; ++j)
            d[j] = s[j];
        for (mg_int j = w; j < W; ++j)
            d[j] = 0;
    }
}

static const FN(gemm_cfg) FN(gemm_cfgs)[MG_ISA_COUNT] = {
    CFG_PORTABLE,
#if MG_X86
    CFG_AVX2,
    CFG_AVX512,
#endif
};

static void FN(pack_panel)(const FN(gemm_cfg) *g, mg_int kc, mg_int w, mg_int W, const T *src, mg_int sk,
                           mg_int sw, T *dst)
{
    if (sk == 1 && sw != 1 && g->pack_t)
        g->pack_t(kc, w, W, src, sk, sw, dst);
    else if (sw == 1 && g->pack_n)
        g->pack_n(kc, w, W, src, sk, sw, dst);
    else
        FN(pack_portable)(kc, w, W, src, sk, sw, dst);
}

/* Panels [0, ceil(rows / mr)) of an A whose elements A(i, k), i < rows, are contiguous along i: at src + k * sk
 * + i, or, with a row table, at rowp[k] + off + i.  Panel p goes to dst + p * kc * mr, laid out as
 * pack_panel lays out one (kc rows of mr, the rows past `rows` zero).  Such an A is a weight gradient's
 * dz.T (dz's rows, the k, are 4H elements apart: 2 KiB for an LSTM's H = 128) or the table of a
 * matmul_stacked_t.  Packed one panel at a time it is read mr elements from each of kc far-apart lines, and
 * each line is fetched again for the next panel; here each k's run of a group's rows is read end to end,
 * with the run A_GROUP_AHEAD k further requested meanwhile.  Measured on one core of an AMD EPYC (family
 * 25, model 1, AVX2), both ways alternating in one process, groups of 16 panels against one: float32
 * dz.T @ x (M = 512, K = 2048, N = 64) 1.25x, dz.T @ h (N = 128) 1.40x, matmul_stacked_t of the same
 * 1.37x; float64 1.56x, 1.12x, 1.36x.  Without the requests the groups gained nothing. */
#define A_GROUP_AHEAD 8
static void FN(pack_a_group)(mg_int kc, mg_int rows, mg_int mr, const T *src, mg_int sk, const T *const *rowp,
                             mg_int off, T *dst)
{
    const mg_int full = rows / mr, np = (rows + mr - 1) / mr, ps = kc * mr;
    for (mg_int k = 0; k < kc; ++k) {
        const T *s = rowp ? rowp[k] + off : src + k * sk;
        T *d = dst + k * mr;
        if (k + A_GROUP_AHEAD < kc) {
            const char *next = (const char *)(rowp ? rowp[k + A_GROUP_AHEAD] + off : src + (k + A_GROUP_AHEAD) * sk);
            for (mg_int b = 0; b < rows * (mg_int)sizeof(T); b += 64)
                __builtin_prefetch(next + b, 0, 3);
        }
        mg_int p = 0;
        if (mr == 6) {
            for (; p < full; ++p)
                memcpy(d + p * ps, s + p * 6, 6 * sizeof(T));
        }
        for (; p < np; ++p) {
            const mg_int w = rows - p * mr < mr ? rows - p * mr : mr;
            for (mg_int j = 0; j < w; ++j)
                d[p * ps + j] = s[p * mr + j];
            for (mg_int j = w; j < mr; ++j)
                d[p * ps + j] = 0;
        }
    }
}

/* B as the micro-kernel reads it for one (jc, pc) block: panel jr/nr starts at base + (jr/nr)*ps, row k of a
 * panel is bks further. */
typedef struct {
    const T *base;
    mg_int ps, bks;
} FN(bview);

/* Request rows [r0, r1) of the row-major block at p (row stride rs), their first n elements, into L1. */
static inline void FN(prefetch_rows)(const T *p, mg_int rs, mg_int r0, mg_int r1, mg_int n, int for_write)
{
    const mg_int bytes = n * (mg_int)sizeof(T);
    for (mg_int i = r0; i < r1; ++i) {
        const char *row = (const char *)(p + i * rs);
        for (mg_int off = 0; off < bytes + 63; off += 64) {
            const char *line = row + (off < bytes ? off : bytes - 1); /* (and the row's last line) */
            if (for_write)
                __builtin_prefetch(line, 1, 3);
            else
                __builtin_prefetch(line, 0, 3);
        }
    }
}

/* Whether gemm_serial reads A in place rather than packing it, for a product N columns wide.  A row-major A
 * is read in place: its micro-panel, mr rows of kc, stays in L1 through the jr loop.  So is a column-major
 * one whose columns are short.  A long-column one (the gradient's g.T of a weight gradient g.T @ x) is
 * packed when its micro-panel serves three or more B panels: in place it would be kc lines a whole column
 * apart, which share a few L1 sets (at 4 KiB apart, one) and evict each other between panels.  For one or two
 * panels the packing pass costs more than it saves.  Measured on one Zen 4 core, M = 512 and K = 2048 (an
 * LSTM's 4H and T * B): float32 N = 64 (one panel) 1.59 -> 1.27 ms, N = 128 2.96 -> 2.48 ms; float64 N = 64
 * (two panels) 3.41 -> 2.72 ms, while at N = 128 (four) packing stays ahead, 5.8 against 7.0 ms. */
static inline int FN(a_in_place)(const FN(gemm_cfg) *g, const T *const *arows, mg_int sam, mg_int sak, mg_int N)
{
    const mg_int nc = N < g->nc ? N : g->nc;
    return !arows && (sak == 1 || (sam == 1 && (sak <= 2 * g->mr || nc <= 2 * g->nr)));
}

/* Whether a long-column A that gemm_serial packs (a transposed operand, a row table) is packed g->a_group
 * panels at a time (FN(pack_a_group)) rather than one: always where a_group_stride is 0 (AVX2); else only
 * when A's columns lie a multiple of a_group_stride bytes apart, so that the lines one panel reads share a
 * few L1 sets (AVX-512: 2 KiB, two sets of a 32 KiB 8-way L1 -- an LSTM's dz.T at H = 128 in float32).
 * Measured on a 2-vCPU Zen 4 guest, both ways alternating in one process, matmul_stacked_t on 2 threads
 * (percent of the two cores' peak): float32 (1024, 8192) @ (8192, 256) 77 -> 85, @ (8192, 512) 84 -> 89,
 * (512, 2048) @ (2048, 256) 87 -> 91; float64 (512, 2048) @ (2048, 128) 79 -> 83, (1024, 8192) @
 * (8192, 256) 81 -> 84.  Where the columns do not alias (an RNN's or a GRU's: 512 B, 1.5 KiB, 3 KiB apart),
 * groups gained nothing and lost up to 5 % (float32 (128, 2048) @ (2048, 256) 88 -> 83). */
static inline int FN(a_grouped)(const FN(gemm_cfg) *g, mg_int sak, const T *const *arows, mg_int K)
{
    if (g->a_group <= 1)
        return 0;
    if (!g->a_group_stride)
        return 1;
    ptrdiff_t bytes = arows ? (K > 1 ? (const char *)arows[1] - (const char *)arows[0] : 0)
                            : sak * (ptrdiff_t)sizeof(T);
    if (bytes < 0)
        bytes = -bytes;
    return bytes != 0 && bytes % g->a_group_stride == 0;
}

/* Whether gemm_serial reads a row-major B (row stride sbk) in place rather than packing it, for M rows of A.
 * The AVX-512 paths do so for up to 64 rows.  The AVX2 path (an L1 of 32 KB, 8 ways, on the cores it was
 * measured on) does so only while B's rows are at most 1 KB apart and M times that is at most 32 KB: on one
 * core of an AMD EPYC (family 25, model 1), products of both kinds alternating in one process, float32
 * 32 x 128 @ 128 x 128 1.32x faster read in place (float64 1.22x), 16 x 256 @ 256 x 256 1.48x, 32 x 256 @
 * 256 x 256 1.12x, 64 x 128 @ 128 x 128 1.15x, 64^3 1.14x; but 64 x 256 @ 256 x 256 0.98x (float64
 * 0.86x), 64 x 128 @ 128 x 512 0.92x, 32 x 128 @ 128 x 512 1.00x and 8 x 1024 @ 1024 x 1024 0.91x. */
static inline int FN(b_in_place)(const FN(gemm_cfg) *g, mg_int M, mg_int sbk)
{
    if (M > g->direct_b_rows)
        return 0;
    const mg_int row = (sbk < 0 ? -sbk : sbk) * (mg_int)sizeof(T); /* (rows reversed, a B[::-1]: as far apart) */
    return !g->direct_b_span || (row <= 1024 && M * row <= g->direct_b_span);
}

/* D[0:m, 0:n] = S[0:m, 0:n] (strided). */
static void FN(copy_rows)(mg_int m, mg_int n, const T *S, mg_int ssm, mg_int ssn, T *D, mg_int sdm, mg_int sdn)
{
    for (mg_int i = 0; i < m; ++i) {
        const T *s = S + i * ssm;
        T *d = D + i * sdm;
        if (ssn == 1 && sdn == 1)
            memcpy(d, s, (size_t)n * sizeof(T));
        else
            for (mg_int j = 0; j < n; ++j)
                d[j * sdn] = s[j * ssn];
    }
}

/* C[0:M, 0:N] (=|+=) A @ B on one thread.  `packed` (optional) is all of B already in panels: panel p holds
 * B[0:K, p*nr:(p+1)*nr] as K rows of nr.  Row tables (optional, mg_matmul_rows) replace A and B: A(i, k) is
 * arows[k][aoff + i] and B(k, j) is brows[k][boff + j].  With `cin` (mg_addmm) C = Cin + A @ B instead: the
 * micro-kernels add Cin's tile to the product's as they store it (Cin or C column-strided: each row block of
 * Cin is copied into C just before the micro-kernels add the product to it, while it is in L1);
 * `epi` (optional, C row-major) then maps each finished row block in place, while it is still there.
 * scratch holds g->kc * (g->mr * g->a_group + round_up(min(N, g->nc), g->nr)). */
static void FN(gemm_serial)(const FN(gemm_cfg) *g, mg_int M, mg_int N, mg_int K,
                            const T *A, mg_int sam, mg_int sak, const T *const *arows, mg_int aoff,
                            const T *B, mg_int sbk, mg_int sbn, const T *const *brows, mg_int boff,
                            const T *packed, const T *cin, mg_int sim, mg_int sin, FN(epi_fn) epi,
                            T *C, mg_int scm, mg_int scn, int accumulate, T *scratch)
{
    const mg_int mr = g->mr, nr = g->nr;
    const int direct_a = FN(a_in_place)(g, arows, sam, sak, N);
    const int direct_b = !packed && !brows && sbn == 1 && FN(b_in_place)(g, M, sbk);
    const mg_int ars = direct_a ? sam : 1, aks = direct_a ? sak : mr;
    /* an A contiguous along M (a transposed operand, or a row table) not read in place: packed in groups */
    const int a_packed_long = !direct_a && (arows || (sam == 1 && sak != 1));
    const mg_int ga = a_packed_long && FN(a_grouped)(g, sak, arows, K) ? g->a_group : 1;
    /* Cin with contiguous rows (a bias broadcast down the rows included) is added by the micro-kernel as it
     * stores the product's first K slice; any other is copied into C first. */
    const int cin_in_ukr = cin && sin == 1 && scn == 1;
    T *abuf = scratch, *bbuf = scratch + g->kc * mr * g->a_group;
    /* A short A read in place (an RNN step's state rows) stays in L1 while each B panel is swept down all
     * its rows: B then comes from L2 once per panel instead of once per row tile. */
    const int jr_outer = direct_a && !direct_b && M * (K < g->kc ? K : g->kc) * (mg_int)sizeof(T) <= JR_OUTER_A_BYTES;
    for (mg_int jc = 0; jc < N; jc += g->nc) {
        const mg_int nc = N - jc < g->nc ? N - jc : g->nc;
        for (mg_int pc = 0; pc < K; pc += g->kc) {
            const mg_int kc = K - pc < g->kc ? K - pc : g->kc;
            const int overwrite = pc == 0 && !accumulate && !cin;
            FN(bview) bv;
            if (packed) {
                bv.base = packed + jc * K + pc * nr;
                bv.ps = K * nr;
                bv.bks = nr;
            } else if (direct_b) {
                bv.base = B + pc * sbk + jc;
                bv.ps = nr;
                bv.bks = sbk;
            } else {
                for (mg_int jr = 0; jr < nc; jr += nr) {
                    const mg_int w = nc - jr < nr ? nc - jr : nr;
                    if (brows)
                        g->pack_rows(kc, w, nr, brows + pc, boff + jc + jr, bbuf + jr * kc);
                    else
                        FN(pack_panel)(g, kc, w, nr, B + pc * sbk + (jc + jr) * sbn, sbk, sbn,
                                       bbuf + jr * kc);
                }
                bv.base = bbuf;
                bv.ps = kc * nr;
                bv.bks = nr;
            }
            /* Cin and C (the RNN step's input projection and state, cold) are requested one row block
             * ahead of the micro-kernels, so that their lines arrive while the block before is computed:
             * a float64 32x128 @ 128x128 step from memory measured 15.1 -> 14.2 us per pair of directions.
             * Only for an addend of C's shape and a single K slice: a plain product's C (or a bias's) was
             * measured no faster for it, and the requests cost instructions. */
            if (jr_outer) {
                if (cin && pc == 0 && !cin_in_ukr)
                    FN(copy_rows)(M, nc, cin + jc * sin, sim, sin, C + jc * scn, scm, scn);
                for (mg_int jr = 0, p = 0; jr < nc; jr += nr, ++p)
                    for (mg_int ir = 0; ir < M; ir += mr)
                        g->ukr(kc, A + ir * sam + pc * sak, ars, aks, bv.base + p * bv.ps, bv.bks,
                               C + ir * scm + (jc + jr) * scn, scm, scn, M - ir < mr ? M - ir : mr,
                               nc - jr < nr ? nc - jr : nr, overwrite,
                               cin_in_ukr && pc == 0 ? cin + ir * sim + jc + jr : NULL, sim);
                if (epi && pc + kc >= K)
                    for (mg_int i = 0; i < M; ++i)
                        epi(nc, C + i * scm + jc * scn, C + i * scm + jc * scn);
                continue;
            }
            const int pf_cin = cin_in_ukr && sim != 0 && pc == 0 && K <= g->kc, pf_c = pf_cin;
            const mg_int first = M < mr ? M : mr;
            if (pf_cin)
                FN(prefetch_rows)(cin + jc, sim, 0, first, nc, 0);
            if (pf_c)
                FN(prefetch_rows)(C + jc, scm, 0, first, nc, 1);
            for (mg_int ir = 0; ir < M; ir += mr) {
                const mg_int mrr = M - ir < mr ? M - ir : mr;
                const mg_int nx = ir + mr, nx_end = M - nx < mr ? M : nx + mr;
                if (pf_cin && nx < M)
                    FN(prefetch_rows)(cin + jc, sim, nx, nx_end, nc, 0);
                if (pf_c && nx < M)
                    FN(prefetch_rows)(C + jc, scm, nx, nx_end, nc, 1);
                const T *ap;
                if (direct_a) {
                    ap = A + ir * sam + pc * sak;
                } else if (ga > 1) {
                    const mg_int gi = (ir / mr) % ga;
                    if (gi == 0)
                        FN(pack_a_group)(kc, M - ir < ga * mr ? M - ir : ga * mr, mr,
                                         arows ? NULL : A + ir + pc * sak, sak, arows ? arows + pc : NULL, aoff + ir,
                                         abuf);
                    ap = abuf + gi * kc * mr;
                } else if (arows) {
                    g->pack_rows(kc, mrr, mr, arows + pc, aoff + ir, abuf);
                    ap = abuf;
                } else {
                    FN(pack_panel)(g, kc, mrr, mr, A + ir * sam + pc * sak, sak, sam, abuf);
                    ap = abuf;
                }
                T *cr = C + ir * scm + jc * scn;
                if (cin && pc == 0 && !cin_in_ukr)
                    FN(copy_rows)(mrr, nc, cin + ir * sim + jc * sin, sim, sin, cr, scm, scn);
                const T *ci = cin_in_ukr && pc == 0 ? cin + ir * sim + jc : NULL;
                for (mg_int jr = 0, p = 0; jr < nc; jr += nr, ++p)
                    g->ukr(kc, ap, ars, aks, bv.base + p * bv.ps, bv.bks, cr + jr * scn, scm, scn, mrr,
                           nc - jr < nr ? nc - jr : nr, overwrite, ci ? ci + jr : NULL, sim);
                if (epi && pc + kc >= K)
                    for (mg_int i = 0; i < mrr; ++i)
                        epi(nc, cr + i * scm, cr + i * scm);
            }
        }
    }
}

static mg_int FN(scratch_len)(const FN(gemm_cfg) *g, mg_int N)
{
    const mg_int nc = N < g->nc ? N : g->nc;
    return g->kc * (g->mr * g->a_group + (nc + g->nr - 1) / g->nr * g->nr);
}

/* A batch of products given by pointers, one per product (mg_addmm_many): A, packed B, Cin and C. */
typedef struct {
    const T *const *a, *const *p, *const *cin;
    T *const *c;
} FN(batch_tab);

/* One parallel matmul: the operands, and how the work is cut into tasks (see matmul_run). */
typedef struct {
    const FN(gemm_cfg) *g;
    mg_int M, N, K, parts, chunk;
    int split_n, accumulate;
    const T *A, *B, *packed;
    const T *const *arows, *const *brows;
    const T *cin;
    const FN(batch_tab) *tab;
    FN(epi_fn) epi;
    T *C;
    mg_int sab, sam, sak, sbb, sbk, sbn, sim, sin, scb, scm, scn, slen;
    _Atomic int failed;
} FN(mm_job);

static void FN(mm_task)(void *ctx, mg_int t)
{
    FN(mm_job) *j = ctx;
    const mg_int b = t / j->parts, lo = t % j->parts * j->chunk;
    const mg_int dim = j->split_n ? j->N : j->M, hi = lo + j->chunk < dim ? lo + j->chunk : dim;
    T *scratch = mg_scratch((size_t)j->slen * sizeof(T));
    if (!scratch) {
        j->failed = 1;
        return;
    }
    if (lo >= hi)
        return;
    /* (row tables and cin come with a batch of one, b == 0, or with a table) */
    const T *A = j->A ? j->A + b * j->sab : NULL, *B = j->B ? j->B + b * j->sbb : NULL;
    const T *packed = j->packed, *cin = j->cin;
    T *C = j->C + b * j->scb;
    if (j->tab) {
        A = j->tab->a[b];
        packed = j->tab->p[b];
        cin = j->tab->cin[b];
        C = j->tab->c[b];
    }
    if (j->split_n)
        FN(gemm_serial)(j->g, j->M, hi - lo, j->K, A, j->sam, j->sak, j->arows, 0, B ? B + lo * j->sbn : NULL,
                        j->sbk, j->sbn, j->brows, lo, packed ? packed + lo * j->K : NULL,
                        cin ? cin + lo * j->sin : NULL, j->sim, j->sin, j->epi, C + lo * j->scn, j->scm,
                        j->scn, j->accumulate, scratch);
    else
        FN(gemm_serial)(j->g, hi - lo, j->N, j->K, A ? A + lo * j->sam : NULL, j->sam, j->sak, j->arows, lo,
                        B, j->sbk, j->sbn, j->brows, 0, packed, cin ? cin + lo * j->sim : NULL,
                        j->sim, j->sin, j->epi, C + lo * j->scm, j->scm, j->scn, j->accumulate, scratch);
}

/* The shared back end of mg_matmul, mg_matmul_packed, mg_matmul_rows and mg_addmm: B is (B, sbb, sbk, sbn),
 * the packed panels `packed` of one K x N matrix shared by the whole batch, or (batch of one) the row table
 * `brows`; A is (A, sab, sam, sak) or (batch of one) the row table `arows` of A.T; `cin` (batch of one) is
 * added to the product. */
static int FN(matmul_run)(const FN(gemm_cfg) *g, mg_int batch, mg_int M, mg_int N, mg_int K,
                          const T *A, mg_int sab, mg_int sam, mg_int sak, const T *const *arows,
                          const T *B, mg_int sbb, mg_int sbk, mg_int sbn, const T *const *brows,
                          const T *packed,
                          const T *cin, mg_int sim, mg_int sin, FN(epi_fn) epi,
                          T *C, mg_int scb, mg_int scm, mg_int scn, int accumulate, const FN(batch_tab) *tab)
{
    const double flops = 2.0 * (double)batch * (double)M * (double)N * (double)K;
    int wake = flops >= MG_WAKE_FLOPS;
    int nt = mg_job_threads(flops >= MG_SHARE_FLOPS, &wake);
    if (nt > 1 && (K < MG_FAR_MIN_K || flops * (double)sizeof(T) / 4 < MG_FAR_SHARE_FLOPS) &&
        mg_threads_far())
        nt = 1; /* the cores far apart: C's lines would cost more to gather than the split saves */
    FN(mm_job) j = {g, M, N, K, 1, 0, 1, accumulate, A, B, packed, arows, brows, cin, tab, epi, C, sab, sam, sak, sbb,
                    sbk, sbn, sim, sin, scb, scm, scn, 0, 0};

    /* Tasks: whole products when the batch alone keeps the threads busy (products given by a table, each
     * with its own B, from one per thread on: the two directions of an RNN step, one per core, measured
     * 1.6 us faster per pair of 32x128 @ 128x128 float64 steps than cut up); else every product is cut along N
     * into groups of B panels (a few tasks per thread, so that a thread that starts late still finds work;
     * each task reads all of A), or into nt slices along N or M (each packs all of A, or all of B).  Into
     * groups whenever A is read in place (a row-major A, as the h (N, H) of an RNN step, costs only cache
     * traffic to re-read).  An A that every task packs again, such as a weight gradient's g.T or h.T with
     * K = T * N, is packed once per thread: the slices go along N when B is at least as wide as A is tall
     * (B, the layer's input, is the bigger and usually the colder operand: each thread reads half of it; a
     * g.T @ x measured 164 -> 180 GFLOP/s, float64, from memory), else along M.  (A small A went into
     * groups too, until an LSTM's dW_hh = sum_t h_t.T @ dz_t, (128, 2048) @ (2048, 512), was measured
     * re-packing its A in each of 8 groups: as 2 slices it ran 1.37x faster in float32 and 1.22x in float64
     * on 2 threads of an Intel Xeon, family 6, model 207.)  With a small B (MG_SMALL_B_BYTES: a weight
     * gradient whose K is the batch, h.T @ g) such a product is cut along M even when B is the wider: each
     * thread packs all of B, which costs little, and writes whole rows of C.  A tall row-major A of
     * MG_SPLIT_M_BYTES or more (a layer's input x (T * N, I) @ W_ih.T, or its gradient dz (T * N, 4H) @ W_ih)
     * is cut along M into two slices per thread instead: each group would read all of it for a few columns
     * of B. */
    const mg_int nb_m = (M + g->mr - 1) / g->mr, nb_n = (N + g->nr - 1) / g->nr;
    /* (A long-column A is read in place by gemm_serial when N is narrow, but every task would read all of it:
     * for the split it counts as packed.) */
    const int a_in_place = !arows && (sak == 1 || (sam == 1 && sak <= 2 * g->mr));
    if (nt > 1 && batch < (tab ? nt : 2 * nt)) {
        const int tall_a = sak == 1 && !arows && M >= 2 * N && nb_m >= 4 * nt &&
                           (size_t)M * (size_t)K * sizeof(T) >= MG_SPLIT_M_BYTES;
        const int small_b = !arows && !brows && !a_in_place && nb_m >= nt &&
                            (size_t)K * (size_t)N * sizeof(T) <= MG_SMALL_B_BYTES;
        if (nb_n >= nt && (a_in_place || nb_m < nt) && !tall_a) {
            j.parts = nb_n < 4 * nt ? nb_n : 4 * nt;
            j.chunk = (nb_n + j.parts - 1) / j.parts * g->nr;
        } else if (nb_n >= nt && N >= M && !small_b) {
            j.parts = nt;
            j.chunk = (nb_n + j.parts - 1) / j.parts * g->nr;
        } else {
            j.split_n = 0;
            const mg_int want = tall_a ? 2 * nt : nt; /* two each: a core that runs late hands one over */
            j.parts = nb_m < want ? nb_m : want;
            j.chunk = (nb_m + j.parts - 1) / j.parts * g->mr;
        }
        j.parts = ((j.split_n ? N : M) + j.chunk - 1) / j.chunk; /* no empty trailing parts */
    } else {
        j.chunk = N;
    }
    j.slen = FN(scratch_len)(g, j.split_n ? j.chunk : N);
    mg_parallel_for(batch * j.parts, nt, wake, FN(mm_task), &j);
    return j.failed ? -1 : 0;
}

static void FN(zero_or_keep)(mg_int batch, mg_int M, mg_int N, T *C, mg_int scb, mg_int scm, mg_int scn,
                             int accumulate)
{
    if (!accumulate)
        for (mg_int b = 0; b < batch; ++b)
            for (mg_int i = 0; i < M; ++i)
                for (mg_int j = 0; j < N; ++j)
                    C[b * scb + i * scm + j * scn] = 0;
}

/* A batch of products sharing one B: treat the batch as extra rows of one product when A and C allow it. */
static void FN(fold_batch)(mg_int *batch, mg_int *M, mg_int sab, mg_int *sam, mg_int scb, mg_int *scm)
{
    if (*batch <= 1)
        return;
    if (*M == 1) {
        *sam = sab;
        *scm = scb;
        *M = *batch;
        *batch = 1;
    } else if (sab == *M * *sam && scb == *M * *scm) {
        *M *= *batch;
        *batch = 1;
    }
}

/* Whether C = A B is better computed as its transpose, C^T = B^T A^T: for a weight gradient g.T @ x whose g
 * (T * N rows of 4H, say) is too big for the caches and x (the layer's input) is narrow.  Read as it is, A =
 * g.T is a long-column operand read in place (a_in_place: N is at most two B panels), kc lines of a panel
 * each a column apart, more than half a page, from memory; transposed, both operands are packed by
 * contiguous row copies.  Same bits: each element of C is the same chain of products over k (the two
 * factors of each swap places in the multiplication, which is exact to reorder), cut into the same K
 * slices.  Measured on an Intel Xeon (family 6, model 207), float32, in place against transposed, alternating
 * 25 times: (768, 8192) @ (8192, 128), a GRU's first layer at H = 256, 1.43-1.44x faster on 1 and 2
 * threads; (1024, 8192) @ (8192, 128), an LSTM's, 1.37x / 1.49x; (256, 8192) @ (8192, 128), a 1 KiB column
 * stride, 0.96-0.98x, and at K = 2048 (A 6 MB) 0.91-1.01x: neither is transposed.  (float64 at N = 128 is
 * four panels, packed already: 1.03-1.08x for transposing, not taken.)  In the float32 GRU training step at
 * B = 64, T = 128, I = 128, H = 256 with two bidirectional layers, on 2 threads, the first layer's dW_ih went
 * from 27.3 to 18.8 ms per step (of about 560 ms); the LSTM's, from about 30 to 20.4 ms. */
static int FN(transposed_pays)(const FN(gemm_cfg) *g, mg_int M, mg_int N, mg_int K, mg_int sam, mg_int sak,
                               mg_int sbn, mg_int scn)
{
    return sam == 1 && sak >= M && (size_t)sak * sizeof(T) > 2048 && sbn == 1 && scn == 1 && N <= 2 * g->nr &&
           (size_t)M * (size_t)K * sizeof(T) >= MG_TRANSPOSE_A_BYTES;
}

/* C (row stride scm) = A B (or += with accumulate) computed as T = B^T A^T in a row-major scratch T, which is
 * then copied into C transposed (after C^T was copied into it, to accumulate). */
static int FN(matmul_transposed)(const FN(gemm_cfg) *g, mg_int M, mg_int N, mg_int K, const T *A, mg_int sam,
                                 mg_int sak, const T *B, mg_int sbk, mg_int sbn, T *C, mg_int scm,
                                 int accumulate)
{
    const size_t bytes = (size_t)M * (size_t)N * sizeof(T);
    T *t = mg_cache_malloc(NULL, bytes);
    if (!t)
        return -1;
    if (accumulate)
        FN(copy_rows)(N, M, C, 1, scm, t, M, 1);
    const int rc = FN(matmul_run)(g, 1, N, M, K, B, 0, sbn, sbk, NULL, A, 0, sak, sam, NULL, NULL, NULL, 0, 0,
                                  NULL, t, 0, M, 1, accumulate, NULL);
    if (rc == 0)
        FN(copy_rows)(M, N, t, 1, M, C, scm, 1);
    mg_cache_free(NULL, t, bytes);
    return rc;
}

int FN(mg_matmul)(mg_int batch, mg_int M, mg_int N, mg_int K,
                  const T *A, mg_int sab, mg_int sam, mg_int sak,
                  const T *B, mg_int sbb, mg_int sbk, mg_int sbn,
                  T *C, mg_int scb, mg_int scm, mg_int scn, int accumulate)
{
    if (batch <= 0 || M <= 0 || N <= 0)
        return 0;
    if (K <= 0) {
        FN(zero_or_keep)(batch, M, N, C, scb, scm, scn, accumulate);
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
    if (sbb == 0) /* every product shares B */
        FN(fold_batch)(&batch, &M, sab, &sam, scb, &scm);
    const FN(gemm_cfg) *g = &FN(gemm_cfgs)[mg_get_isa()];
    if (batch == 1 && FN(transposed_pays)(g, M, N, K, sam, sak, sbn, scn))
        return FN(matmul_transposed)(g, M, N, K, A, sam, sak, B, sbk, sbn, C, scm, accumulate);
    return FN(matmul_run)(g, batch, M, N, K, A, sab, sam, sak, NULL, B, sbb, sbk, sbn, NULL, NULL, NULL, 0, 0,
                          NULL, C, scb, scm, scn, accumulate, NULL);
}

/* ---- a right operand packed once, reused by many products ---- */

mg_int FN(mg_packed_len)(int isa, mg_int K, mg_int N)
{
    if (isa < 0 || isa >= MG_ISA_COUNT || K < 0 || N < 0)
        return -1;
    const mg_int nr = FN(gemm_cfgs)[isa].nr;
    return (N + nr - 1) / nr * nr * K;
}

void FN(mg_pack_b)(int isa, mg_int K, mg_int N, const T *B, mg_int sbk, mg_int sbn, T *dst)
{
    const FN(gemm_cfg) *g = &FN(gemm_cfgs)[isa];
    for (mg_int j = 0; j < N; j += g->nr)
        FN(pack_panel)(g, K, N - j < g->nr ? N - j : g->nr, g->nr, B + j * sbn, sbk, sbn, dst + j * K);
}

int FN(mg_matmul_packed)(int isa, mg_int batch, mg_int M, mg_int N, mg_int K,
                         const T *A, mg_int sab, mg_int sam, mg_int sak, const T *P,
                         T *C, mg_int scb, mg_int scm, mg_int scn, int accumulate)
{
    if (batch <= 0 || M <= 0 || N <= 0)
        return 0;
    if (K <= 0) {
        FN(zero_or_keep)(batch, M, N, C, scb, scm, scn, accumulate);
        return 0;
    }
    FN(fold_batch)(&batch, &M, sab, &sam, scb, &scm); /* B is shared by construction */
    return FN(matmul_run)(&FN(gemm_cfgs)[isa], batch, M, N, K, A, sab, sam, sak, NULL, P, 0, 0, 0, NULL, P, NULL, 0,
                          0, NULL, C, scb, scm, scn, accumulate, NULL);
}

int FN(mg_addmm)(int isa, mg_int M, mg_int N, mg_int K, const T *Cin, mg_int sim, mg_int sin,
                 const T *A, mg_int sam, mg_int sak, const T *B, mg_int sbk, mg_int sbn, const T *P,
                 T *C, mg_int scm, mg_int scn, int tanh_out)
{
    if (M <= 0 || N <= 0)
        return 0;
    /* the path's tanh is read once, so every task maps its rows with the same one */
    FN(epi_fn) epi = tanh_out ? FN(mg_tanh_serial)(mg_get_isa()) : NULL;
    if (K <= 0 || (epi && scn != 1)) {
        if (K > 0) { /* (C column-strided: the product first, then tanh element by element) */
            const int rc = FN(matmul_run)(&FN(gemm_cfgs)[P ? isa : mg_get_isa()], 1, M, N, K, A, 0, sam, sak,
                                          NULL, P ? P : B, 0, sbk, sbn, NULL, P, Cin, sim, sin, NULL, C, 0, scm,
                                          scn, 0, NULL);
            if (rc)
                return rc;
        } else {
            for (mg_int i = 0; i < M; ++i)
                for (mg_int j = 0; j < N; ++j)
                    C[i * scm + j * scn] = Cin[i * sim + j * sin];
        }
        if (epi)
            for (mg_int i = 0; i < M; ++i)
                for (mg_int j = 0; j < N; ++j)
                    epi(1, C + i * scm + j * scn, C + i * scm + j * scn);
        return 0;
    }
    return FN(matmul_run)(&FN(gemm_cfgs)[P ? isa : mg_get_isa()], 1, M, N, K, A, 0, sam, sak, NULL,
                          P ? P : B, 0, sbk, sbn, NULL, P, Cin, sim, sin, epi, C, 0, scm, scn, 0, NULL);
}

/* `count` independent addmm (each C[i] = Cin[i] + A[i] @ P[i], or its tanh) of one shape and one set of
 * strides, with packed right operands, as ONE parallel job: the threads share the tasks of all of them (the
 * two directions of a bidirectional RNN's step: one hand-off to the pool, not two). */
int FN(mg_addmm_many)(int isa, mg_int count, mg_int M, mg_int N, mg_int K, const T *const *Cin, mg_int sim,
                      mg_int sin, const T *const *A, mg_int sam, mg_int sak, const T *const *P, T *const *C,
                      mg_int scm, mg_int scn, int tanh_out)
{
    if (count <= 0 || M <= 0 || N <= 0)
        return 0;
    if (count == 1 || K <= 0 || (tanh_out && scn != 1)) { /* nothing to share, or the general path's cases */
        for (mg_int i = 0; i < count; ++i) {
            const int rc = FN(mg_addmm)(isa, M, N, K, Cin[i], sim, sin, A[i], sam, sak, NULL, 0, 0, P[i], C[i], scm,
                                        scn, tanh_out);
            if (rc)
                return rc;
        }
        return 0;
    }
    FN(epi_fn) epi = tanh_out ? FN(mg_tanh_serial)(mg_get_isa()) : NULL;
    const FN(batch_tab) tab = {A, P, Cin, C};
    return FN(matmul_run)(&FN(gemm_cfgs)[isa], count, M, N, K, A[0], 0, sam, sak, NULL, P[0], 0, 0, 0, NULL, P[0],
                          Cin[0], sim, sin, epi, C[0], 0, scm, scn, 0, &tab);
}

/* ---- an Elman RNN layer's forward, every step in one job ---- */

/* The job of mg_addmm_seq.  A batch row's state depends only on that row's state before it, so the threads
 * split the rows (an even share each): each task runs its rows of one direction through every step, with no
 * meeting between steps, and a thread done with its rows takes half of a slower thread's (mg_rows_task).  With fewer row panels than threads (a batch of a few rows), each step's products
 * are cut into `parts` column blocks per direction instead, the tasks numbered in step order: the runtimes
 * hand tasks out in increasing order, so a task waits only for tasks already claimed -- it starts once
 * `finished` reaches its step's first task -- and the threads meet once per step.  Either way a thread that
 * joins late only takes the tasks still unclaimed. */
typedef struct {
    const FN(gemm_cfg) *g;
    mg_int count, L, M, N, parts, chunk, slen;
    int by_rows;
    const T *const *cin, *const *h0, *const *P;
    T *const *out;
    mg_int cts, sim, shm, ots, som;
    const int *reverse;
    FN(epi_fn) epi;
    _Atomic mg_int finished;
    _Atomic int failed;
    mg_rows_share share;
} FN(seq_job);

/* Rows [lo, lo + m) or columns [lo, lo + n) of direction d's step s. */
static void FN(seq_block)(FN(seq_job) *j, mg_int d, mg_int s, mg_int lo, mg_int m, mg_int n, T *scratch)
{
    const mg_int t = j->reverse[d] ? j->L - 1 - s : s, prev = j->reverse[d] ? t + 1 : t - 1;
    const mg_int r = j->by_rows ? lo : 0, c = j->by_rows ? 0 : lo;
    const T *a = s == 0 ? j->h0[d] + r * j->shm : j->out[d] + prev * j->ots + r * j->som;
    const mg_int sam = s == 0 ? j->shm : j->som;
    FN(gemm_serial)(j->g, m, n, j->N, a, sam, 1, NULL, 0, NULL, 0, 0, NULL, 0, j->P[d] + c * j->N,
                    j->cin[d] + t * j->cts + r * j->sim + c, j->sim, 1, j->epi, j->out[d] + t * j->ots + r * j->som + c,
                    j->som, 1, 0, scratch);
}

static void FN(seq_rows)(void *ctx, mg_int d, mg_int s, mg_int lo, mg_int m, void *scratch)
{
    FN(seq_job) *j = ctx;
    FN(seq_block)(j, d, s, lo, m, j->N, scratch);
}

static void FN(seq_task)(void *ctx, mg_int i)
{
    FN(seq_job) *j = ctx;
    T *scratch = mg_scratch((size_t)j->slen * sizeof(T));
    if (!scratch)
        j->failed = 1;
    if (j->by_rows) {
        const mg_int d = i / j->parts, lo = i % j->parts * j->chunk, m = j->M - lo < j->chunk ? j->M - lo : j->chunk;
        if (scratch)
            mg_rows_task(&j->share, i, d, lo, m, FN(seq_rows), j, scratch, &j->failed);
        return;
    }
    const mg_int per = j->count * j->parts, s = i / per, d = i % per / j->parts, lo = i % j->parts * j->chunk;
    mg_wait_for(&j->finished, s * per);
    if (!j->failed) /* (a failed job still counts its tasks, or the later ones would wait for ever) */
        FN(seq_block)(j, d, s, lo, j->M, j->N - lo < j->chunk ? j->N - lo : j->chunk, scratch);
    atomic_fetch_add_explicit(&j->finished, 1, memory_order_release);
}

/* How a sequence job cuts each step's (M, N) products for nt threads: into nt row blocks of even size when
 * there are at least nt panels of rows (a part-panel costs only its own rows, so 32 rows run faster as
 * 16 + 16 than as 18 + 14: 405 -> 362 us for a 64-step float32 B=32 H=128 forward on 2 Zen 4 cores), else
 * into column blocks (whole NR panels). */
static void FN(seq_split)(const FN(gemm_cfg) *g, mg_int M, mg_int N, int nt, int *by_rows, mg_int *parts,
                          mg_int *chunk)
{
    const mg_int nb_m = (M + g->mr - 1) / g->mr, nb_n = (N + g->nr - 1) / g->nr;
    *by_rows = nt > 1 && nb_m >= nt;
    if (*by_rows) {
        *chunk = (M + nt - 1) / nt; /* even shares: a part-panel costs only its rows (32 = 16 + 16, not 18 + 14) */
        *parts = (M + *chunk - 1) / *chunk;
    } else if (nt > 1) { /* whole B panels per subtask: every element's sum is the one a single thread computes */
        const mg_int p = nb_n < 2 * nt ? nb_n : 2 * nt;
        *chunk = (nb_n + p - 1) / p * g->nr;
        *parts = (N + *chunk - 1) / *chunk;
    } else {
        *chunk = N;
        *parts = 1;
    }
}

int FN(mg_addmm_seq)(int isa, mg_int count, mg_int L, mg_int M, mg_int N, const T *const *Cin, mg_int cts,
                     mg_int sim, const T *const *H0, mg_int shm, const T *const *P, T *const *C, mg_int ots,
                     mg_int som, const int *reverse, int tanh_out)
{
    if (count <= 0 || L <= 0 || M <= 0 || N <= 0)
        return 0;
    const FN(gemm_cfg) *g = &FN(gemm_cfgs)[isa];
    /* a step is shared by the threads when one product of it would be (matmul_run's rule); waking them
     * pays for itself over the whole sequence */
    const double step_flops = 2.0 * (double)count * (double)M * (double)N * (double)N;
    const int nt = step_flops >= MG_SHARE_FLOPS ? mg_get_num_threads() : 1;
    FN(seq_job) j = {g, count, L, M, N, 1, N, 0, 0, Cin, H0, P, C, cts, sim, shm, ots, som, reverse,
                     tanh_out ? FN(mg_tanh_serial)(mg_get_isa()) : NULL, 0, 0};
    FN(seq_split)(g, M, N, nt, &j.by_rows, &j.parts, &j.chunk);
    j.slen = FN(scratch_len)(g, N);
    mg_rows_init(&j.share, L, count * j.parts);
    mg_parallel_for((j.by_rows ? 1 : L) * count * j.parts, nt, L * step_flops >= MG_WAKE_FLOPS, FN(seq_task), &j);
    return j.failed ? -1 : 0;
}

/* ---- the backward of an Elman RNN layer's tanh steps, every step in one job ---- */

/* The job of mg_tanh_seq_backward, cut as mg_addmm_seq's: by rows, each task its rows through every step;
 * else step s's `parts` column blocks are tasks s * parts + p, each waiting for the steps before it (which
 * hold all of dz[s - 1]). */
typedef struct {
    const FN(gemm_cfg) *g;
    mg_int n, M, N, parts, chunk, slen;
    int by_rows;
    const T *const *G, *const *Y, *P;
    T *const *DZ;
    const mg_int *gs, *ys, *ds;
    void (*tbw)(mg_int, const T *, const T *, T *);
    _Atomic mg_int finished;
    _Atomic int failed;
    mg_rows_share share;
} FN(tseq_job);

/* Rows [r, r + m), columns [c, c + w) of step s's dz. */
static void FN(tseq_block)(FN(tseq_job) *j, mg_int s, mg_int r, mg_int m, mg_int c, mg_int w, T *scratch)
{
    T *dz = j->DZ[s] + r * j->ds[s] + c;
    const T *src = j->G[s] ? j->G[s] + r * j->gs[s] + c : NULL, *y = j->Y[s] + r * j->ys[s] + c;
    mg_int ss = j->gs[s];
    if (s > 0) { /* the state's gradient: G[s] + dz[s - 1] @ P, written where dz[s] goes */
        FN(gemm_serial)(j->g, m, w, j->N, j->DZ[s - 1] + r * j->ds[s - 1], j->ds[s - 1], 1, NULL, 0, NULL, 0, 0,
                        NULL, 0, j->P + c * j->N, src, j->gs[s], 1, NULL, dz, j->ds[s], 1, 0, scratch);
        src = dz;
        ss = j->ds[s];
    }
    for (mg_int i = 0; i < m; ++i) /* tanh's backward, row by row (in place after the product) */
        j->tbw(w, src + i * ss, y + i * j->ys[s], dz + i * j->ds[s]);
}

static void FN(tseq_rows)(void *ctx, mg_int d, mg_int s, mg_int lo, mg_int m, void *scratch)
{
    FN(tseq_job) *j = ctx;
    (void)d;
    FN(tseq_block)(j, s, lo, m, 0, j->N, scratch);
}

static void FN(tseq_task)(void *ctx, mg_int i)
{
    FN(tseq_job) *j = ctx;
    T *scratch = mg_scratch((size_t)j->slen * sizeof(T));
    if (!scratch)
        j->failed = 1;
    if (j->by_rows) {
        const mg_int lo = i * j->chunk, m = j->M - lo < j->chunk ? j->M - lo : j->chunk;
        if (scratch)
            mg_rows_task(&j->share, i, 0, lo, m, FN(tseq_rows), j, scratch, &j->failed);
        return;
    }
    const mg_int s = i / j->parts, lo = i % j->parts * j->chunk;
    mg_wait_for(&j->finished, s * j->parts);
    if (!j->failed)
        FN(tseq_block)(j, s, 0, j->M, lo, j->N - lo < j->chunk ? j->N - lo : j->chunk, scratch);
    atomic_fetch_add_explicit(&j->finished, 1, memory_order_release);
}

int FN(mg_tanh_seq_backward)(int isa, mg_int n, mg_int M, mg_int N, const T *const *G, const mg_int *gs,
                             const T *const *Y, const mg_int *ys, const T *P, T *const *DZ, const mg_int *ds)
{
    if (n <= 0 || M <= 0 || N <= 0)
        return 0;
    const FN(gemm_cfg) *g = &FN(gemm_cfgs)[isa];
    const double step_flops = 2.0 * (double)M * (double)N * (double)N;
    const int nt = step_flops >= MG_SHARE_FLOPS ? mg_get_num_threads() : 1;
    FN(tseq_job) j = {g, n, M, N, 1, N, 0, 0, G, Y, P, DZ, gs, ys, ds, FN(mg_tanh_backward_serial)(mg_get_isa()), 0, 0};
    FN(seq_split)(g, M, N, nt, &j.by_rows, &j.parts, &j.chunk);
    j.slen = FN(scratch_len)(g, N);
    mg_rows_init(&j.share, n, j.parts);
    mg_parallel_for((j.by_rows ? 1 : n) * j.parts, nt, n * step_flops >= MG_WAKE_FLOPS, FN(tseq_task), &j);
    return j.failed ? -1 : 0;
}

/* ---- the gated layers' sequence jobs ---- */

/* The threads of a sequence job cut by rows (those one step's products would get, as matmul_run's rule) and
 * their even shares of the M rows (see seq_split). */
static int FN(row_shares)(mg_int M, double step_flops, mg_int *chunk, mg_int *parts)
{
    const int nt = step_flops >= MG_SHARE_FLOPS ? mg_get_num_threads() : 1;
    *chunk = nt > 1 ? (M + nt - 1) / nt : M;
    *parts = (M + *chunk - 1) / *chunk;
    return nt;
}

/* ---- a gated (LSTM or GRU) layer's forward, every step in one job ---- */

/* The job of mg_lstm_seq and mg_gru_seq: as mg_addmm_seq's row split, each task takes rows [lo, lo + m) of one
 * direction through every step -- the step's gates product for those rows, then the cell's epilogue on them
 * (a row's epilogue needs only its own gates), so no step waits for another thread; a thread done with its
 * rows takes half of a slower thread's (mg_rows_task).  A batch of fewer row
 * panels than threads is cut into fewer rows per task: every element's sum is the same whichever rows share
 * its panel.  LSTM: the product adds into xg[t] and writes act[t], the epilogue then works in place.  GRU:
 * the product adds into bh and writes hg[t], the epilogue reads xg[t] and hg[t]. */
typedef struct {
    const FN(gemm_cfg) *g;
    int gru;
    mg_int L, M, H, parts, chunk, slen;
    const T *const *xg, *const *bh, *const *h0, *const *c0, *const *P;
    T *const *hg, *const *act, *const *c, *const *tc, *const *out;
    mg_int xts, xm, bm, shm, scm, ots, som;
    const int *reverse;
    _Atomic int failed;
    mg_rows_share share;
} FN(gseq_job);

/* Step s of rows [lo, lo + m) of direction d. */
static void FN(gseq_step)(void *ctx, mg_int d, mg_int s, mg_int lo, mg_int m, void *scr)
{
    FN(gseq_job) *j = ctx;
    T *scratch = scr;
    const mg_int H = j->H, G = (j->gru ? 3 : 4) * H, L = j->L;
    const mg_int t = j->reverse[d] ? L - 1 - s : s, prev = j->reverse[d] ? t + 1 : t - 1, row = t * j->M + lo;
    const T *h = s == 0 ? j->h0[d] + lo * j->shm : j->out[d] + prev * j->ots + lo * j->som;
    const mg_int hs = s == 0 ? j->shm : j->som;
    const T *xg = j->xg[d] + t * j->xts + lo * j->xm;
    T *act = j->act[d] + row * G, *out = j->out[d] + t * j->ots + lo * j->som;
    if (j->gru) {
        T *hg = j->hg[d] + row * G;
        FN(gemm_serial)(j->g, m, G, H, h, hs, 1, NULL, 0, NULL, 0, 0, NULL, 0, j->P[d], j->bh[d] + lo * j->bm,
                        j->bm, 1, NULL, hg, G, 1, 0, scratch);
        FN(mg_gru_forward_rows)(m, H, xg, j->xm, hg, G, h, hs, act, G, out, j->som);
    } else {
        const T *cp = s == 0 ? j->c0[d] + lo * j->scm : j->c[d] + (prev * j->M + lo) * H;
        FN(gemm_serial)(j->g, m, G, H, h, hs, 1, NULL, 0, NULL, 0, 0, NULL, 0, j->P[d], xg, j->xm, 1, NULL, act,
                        G, 1, 0, scratch);
        FN(mg_lstm_forward_rows)(m, H, act, G, cp, s == 0 ? j->scm : H, act, G, j->c[d] + row * H, H,
                                 j->tc[d] + row * H, H, out, j->som);
    }
}

static void FN(gseq_task)(void *ctx, mg_int i)
{
    FN(gseq_job) *j = ctx;
    T *scratch = mg_scratch((size_t)j->slen * sizeof(T));
    if (!scratch) {
        j->failed = 1;
        return;
    }
    const mg_int d = i / j->parts, lo = i % j->parts * j->chunk, m = j->M - lo < j->chunk ? j->M - lo : j->chunk;
    mg_rows_task(&j->share, i, d, lo, m, FN(gseq_step), j, scratch, &j->failed);
}

static int FN(gseq_run)(FN(gseq_job) *j, int isa, mg_int count)
{
    if (count <= 0 || j->L <= 0 || j->M <= 0 || j->H <= 0)
        return 0;
    const FN(gemm_cfg) *g = j->g = &FN(gemm_cfgs)[isa];
    const mg_int G = (j->gru ? 3 : 4) * j->H;
    const double step_flops = 2.0 * (double)count * (double)j->M * (double)j->H * (double)G;
    const int nt = FN(row_shares)(j->M, step_flops, &j->chunk, &j->parts);
    j->slen = FN(scratch_len)(g, G);
    mg_rows_init(&j->share, j->L, count * j->parts);
    mg_parallel_for(count * j->parts, nt, j->L * step_flops >= MG_WAKE_FLOPS, FN(gseq_task), j);
    return j->failed ? -1 : 0;
}

int FN(mg_lstm_seq)(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const T *const *Xg, mg_int xts, mg_int xm,
                    const T *const *H0, mg_int shm, const T *const *C0, mg_int scm, const T *const *P,
                    T *const *Act, T *const *C, T *const *Tc, T *const *Out, mg_int ots, mg_int som,
                    const int *reverse)
{
    FN(gseq_job) j = {.gru = 0, .L = L, .M = M, .H = H, .xg = Xg, .h0 = H0, .c0 = C0, .P = P, .act = Act, .c = C,
                      .tc = Tc, .out = Out, .xts = xts, .xm = xm, .shm = shm, .scm = scm, .ots = ots, .som = som,
                      .reverse = reverse};
    return FN(gseq_run)(&j, isa, count);
}

int FN(mg_gru_seq)(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const T *const *Xg, mg_int xts, mg_int xm,
                   const T *const *Bh, mg_int bm, const T *const *H0, mg_int shm, const T *const *P, T *const *Hg,
                   T *const *Act, T *const *Out, mg_int ots, mg_int som, const int *reverse)
{
    FN(gseq_job) j = {.gru = 1, .L = L, .M = M, .H = H, .xg = Xg, .bh = Bh, .h0 = H0, .P = P, .hg = Hg, .act = Act,
                      .out = Out, .xts = xts, .xm = xm, .bm = bm, .shm = shm, .ots = ots, .som = som,
                      .reverse = reverse};
    return FN(gseq_run)(&j, isa, count);
}

/* ---- the backward of an LSTM layer's steps, every step in one job ---- */

/* The job of mg_lstm_seq_backward, cut by rows as mg_lstm_seq's: each task takes its rows through every
 * step, the state's gradient dh (the step's product, plus G) and the cell state's dc kept in the task's
 * scratch between steps (handed over with rows a faster thread takes: mg_rows_state). */
typedef struct {
    const FN(gemm_cfg) *g;
    mg_int n, M, H, parts, chunk, slen, extra;
    const T *const *G, *DC, *const *Act, *const *Cp, *const *Tc, *P;
    T *const *DG, *DCP;
    const mg_int *gs, *as, *cps, *tcs, *dgs;
    mg_int dcs, dcps;
    _Atomic int failed;
    mg_rows_share share;
} FN(lbseq_job);

/* Task scratch: the gemm's, then dh (chunk x H) and two buffers of the cell state's gradient (chunk x H each),
 * rows H apart, row 0 being the range's first row. */
static T *FN(lbseq_dc)(FN(lbseq_job) *j, T *scratch, int which)
{
    return scratch + j->share.state.at[which]; /* (set with the job: slen + (1 + which) * chunk * H) */
}

/* Step k of rows [lo, lo + m). */
static void FN(lbseq_step)(void *ctx, mg_int d, mg_int k, mg_int lo, mg_int m, void *scr)
{
    FN(lbseq_job) *j = ctx;
    T *scratch = scr, *dh = scratch + j->slen;
    const mg_int H = j->H, n = j->n;
    (void)d;
    const T *dhk = j->G[k] ? j->G[k] + lo * j->gs[k] : NULL, *dck;
    mg_int dhs = j->gs[k], dcs = H;
    if (k > 0) { /* the state's gradient: G[k] + DG[k - 1] @ P */
        FN(gemm_serial)(j->g, m, H, 4 * H, j->DG[k - 1] + lo * j->dgs[k - 1], j->dgs[k - 1], 1, NULL, 0, NULL, 0,
                        0, NULL, 0, j->P, dhk, j->gs[k], 1, NULL, dh, H, 1, 0, scratch);
        dhk = dh;
        dhs = H;
        dck = FN(lbseq_dc)(j, scratch, (k - 1) & 1);
    } else {
        dck = j->DC ? j->DC + lo * j->dcs : NULL;
        dcs = j->dcs;
    }
    T *dcp = k == n - 1 ? j->DCP + lo * j->dcps : FN(lbseq_dc)(j, scratch, k & 1);
    FN(mg_lstm_backward_rows)(m, H, dhk, dhs, dck, dcs, j->Act[k] + lo * j->as[k], j->as[k],
                              j->Cp[k] + lo * j->cps[k], j->cps[k], j->Tc[k] + lo * j->tcs[k], j->tcs[k],
                              j->DG[k] + lo * j->dgs[k], j->dgs[k], dcp, k == n - 1 ? j->dcps : H);
}

static void FN(lbseq_task)(void *ctx, mg_int i)
{
    FN(lbseq_job) *j = ctx;
    T *scratch = mg_scratch((size_t)(j->slen + j->extra) * sizeof(T));
    if (!scratch) {
        j->failed = 1;
        return;
    }
    const mg_int lo = i * j->chunk, m = j->M - lo < j->chunk ? j->M - lo : j->chunk;
    mg_rows_task(&j->share, i, 0, lo, m, FN(lbseq_step), j, scratch, &j->failed);
}

int FN(mg_lstm_seq_backward)(int isa, mg_int n, mg_int M, mg_int H, const T *const *G, const mg_int *gs,
                             const T *DC, mg_int dcs, const T *const *Act, const mg_int *as, const T *const *Cp,
                             const mg_int *cps, const T *const *Tc, const mg_int *tcs, const T *P, T *const *DG,
                             const mg_int *dgs, T *DCP, mg_int dcps)
{
    if (n <= 0 || M <= 0 || H <= 0)
        return 0;
    const FN(gemm_cfg) *g = &FN(gemm_cfgs)[isa];
    const double step_flops = 8.0 * (double)M * (double)H * (double)H;
    FN(lbseq_job) j = {g, n, M, H, 1, M, 0, 0, G, DC, Act, Cp, Tc, P, DG, DCP, gs, as, cps, tcs, dgs, dcs, dcps, 0};
    const int nt = FN(row_shares)(M, step_flops, &j.chunk, &j.parts);
    j.slen = (FN(scratch_len)(g, H) + 15) / 16 * 16; /* the state buffers start 64 bytes aligned */
    j.extra = 3 * j.chunk * H;
    mg_rows_init(&j.share, n, j.parts);
    /* a row's cell-state gradient travels through DCP, the last step's output */
    j.share.state = (mg_rows_state){sizeof(T), H, {j.slen + j.chunk * H, j.slen + 2 * j.chunk * H}, dcps, (char *)DCP};
    mg_parallel_for(j.parts, nt, n * step_flops >= MG_WAKE_FLOPS, FN(lbseq_task), &j);
    return j.failed ? -1 : 0;
}

/* ---- the backward of a GRU layer's steps, every step in one job ---- */

/* The job of mg_gru_seq_backward, cut by rows as mg_gru_seq's: each task takes its rows through every step,
 * the direct part of h's gradient (dh * z) and the state's whole gradient kept in the task's scratch. */
typedef struct {
    const FN(gemm_cfg) *g;
    mg_int n, M, H, parts, chunk, slen, extra;
    const T *const *G, *const *Act, *const *Hn, *const *Hp, *P;
    T *const *DX, *const *DHG, *DHP;
    const mg_int *gs, *as, *hns, *hps, *dxs, *dhgs;
    mg_int dhps;
    _Atomic int failed;
    mg_rows_share share;
} FN(gbseq_job);

/* Task scratch: the gemm's, then dh, the sum G + direct, and two buffers of the direct part (chunk x H each),
 * rows H apart, row 0 being the range's first row. */
static T *FN(gbseq_direct)(FN(gbseq_job) *j, T *scratch, int which)
{
    return scratch + j->share.state.at[which]; /* (set with the job: slen + (2 + which) * chunk * H) */
}

/* Step k of rows [lo, lo + m). */
static void FN(gbseq_step)(void *ctx, mg_int d, mg_int k, mg_int lo, mg_int m, void *scr)
{
    FN(gbseq_job) *j = ctx;
    T *scratch = scr, *dh = scratch + j->slen, *sum = dh + j->chunk * j->H;
    const mg_int H = j->H, n = j->n;
    (void)d;
    const T *dhk = j->G[k] ? j->G[k] + lo * j->gs[k] : NULL;
    mg_int dhs = j->gs[k];
    if (k > 0) { /* the state's gradient: (G[k] + direct) + DHG[k - 1] @ P, summed in the engine's order */
        const T *direct = FN(gbseq_direct)(j, scratch, (k - 1) & 1), *cin = direct;
        if (dhk) {
            for (mg_int r = 0; r < m; ++r)
                for (mg_int c = 0; c < H; ++c)
                    sum[r * H + c] = dhk[r * dhs + c] + direct[r * H + c];
            cin = sum;
        }
        FN(gemm_serial)(j->g, m, H, 3 * H, j->DHG[k - 1] + lo * j->dhgs[k - 1], j->dhgs[k - 1], 1, NULL, 0, NULL,
                        0, 0, NULL, 0, j->P, cin, H, 1, NULL, dh, H, 1, 0, scratch);
        dhk = dh;
        dhs = H;
    }
    T *direct_out = k == n - 1 ? j->DHP + lo * j->dhps : FN(gbseq_direct)(j, scratch, k & 1);
    FN(mg_gru_backward_rows)(m, H, dhk, dhs, j->Act[k] + lo * j->as[k], j->as[k], j->Hn[k] + lo * j->hns[k],
                             j->hns[k], j->Hp[k] + lo * j->hps[k], j->hps[k], j->DX[k] + lo * j->dxs[k],
                             j->dxs[k], j->DHG[k] + lo * j->dhgs[k], j->dhgs[k], direct_out,
                             k == n - 1 ? j->dhps : H);
}

static void FN(gbseq_task)(void *ctx, mg_int i)
{
    FN(gbseq_job) *j = ctx;
    T *scratch = mg_scratch((size_t)(j->slen + j->extra) * sizeof(T));
    if (!scratch) {
        j->failed = 1;
        return;
    }
    const mg_int lo = i * j->chunk, m = j->M - lo < j->chunk ? j->M - lo : j->chunk;
    mg_rows_task(&j->share, i, 0, lo, m, FN(gbseq_step), j, scratch, &j->failed);
}

int FN(mg_gru_seq_backward)(int isa, mg_int n, mg_int M, mg_int H, const T *const *G, const mg_int *gs,
                            const T *const *Act, const mg_int *as, const T *const *Hn, const mg_int *hns,
                            const T *const *Hp, const mg_int *hps, const T *P, T *const *DX, const mg_int *dxs,
                            T *const *DHG, const mg_int *dhgs, T *DHP, mg_int dhps)
{
    if (n <= 0 || M <= 0 || H <= 0)
        return 0;
    const FN(gemm_cfg) *g = &FN(gemm_cfgs)[isa];
    const double step_flops = 6.0 * (double)M * (double)H * (double)H;
    FN(gbseq_job) j = {g, n, M, H, 1, M, 0, 0, G, Act, Hn, Hp, P, DX, DHG, DHP, gs, as, hns, hps, dxs, dhgs, dhps, 0};
    const int nt = FN(row_shares)(M, step_flops, &j.chunk, &j.parts);
    j.slen = (FN(scratch_len)(g, H) + 15) / 16 * 16; /* the state buffers start 64 bytes aligned */
    j.extra = 4 * j.chunk * H;
    mg_rows_init(&j.share, n, j.parts);
    /* the direct part of a row's gradient travels through DHP, the last step's output */
    j.share.state =
        (mg_rows_state){sizeof(T), H, {j.slen + 2 * j.chunk * H, j.slen + 3 * j.chunk * H}, dhps, (char *)DHP};
    mg_parallel_for(j.parts, nt, n * step_flops >= MG_WAKE_FLOPS, FN(gbseq_task), &j);
    return j.failed ? -1 : 0;
}

/* ---- a product of row-stacked factors, without stacking them ---- */

/* The stride, in elements, when row k of a table lies at rows[0] + k * stride for every k (one array's
 * rows in order, such as an RNN's gradients stacked over time), else 0. */
static mg_int FN(table_stride)(const T *const *rows, mg_int K)
{
    if (K < 2)
        return 0;
    const intptr_t step = (intptr_t)rows[1] - (intptr_t)rows[0];
    if (step <= 0 || step % (intptr_t)sizeof(T))
        return 0;
    for (mg_int k = 2; k < K; ++k)
        if ((intptr_t)rows[k] - (intptr_t)rows[k - 1] != step)
            return 0;
    return (mg_int)(step / (intptr_t)sizeof(T));
}

int FN(mg_matmul_rows)(mg_int M, mg_int N, mg_int K, const T *const *arows, const T *const *brows,
                       T *C, mg_int scm, int accumulate)
{
    if (M <= 0 || N <= 0)
        return 0;
    if (K <= 0) {
        FN(zero_or_keep)(1, M, N, C, 0, scm, 1, accumulate);
        return 0;
    }
    /* A table of evenly spaced rows is the strided A.T of one array: the product may then read it in place
     * (a_in_place), which a table never is.  Same bits either way: only where A is read from changes.  An
     * LSTM's dW_hh (M = 512, K = 2048, N = 128, float32, one core) measured 2.98 -> 2.5 ms. */
    const mg_int sak = FN(table_stride)(arows, K);
    if (sak)
        return FN(matmul_run)(&FN(gemm_cfgs)[mg_get_isa()], 1, M, N, K, arows[0], 0, 1, sak, NULL, NULL, 0, 0,
                              0, brows, NULL, NULL, 0, 0, NULL, C, 0, scm, 1, accumulate, NULL);
    return FN(matmul_run)(&FN(gemm_cfgs)[mg_get_isa()], 1, M, N, K, NULL, 0, 0, 0, arows, NULL, 0, 0, 0, brows,
                          NULL, NULL, 0, 0, NULL, C, 0, scm, 1, accumulate, NULL);
}

#undef PMR
#undef PNR
#undef FN
#undef MG_CAT
#undef MG_CAT_
