/* minigrad's compute kernels: plain C, no Python.
 *
 * Sizes and strides are mg_int, which is ptrdiff_t (the same width as numpy's npy_intp), counted in
 * elements, not bytes.  Strides may be zero or negative.  Kernels return 0 on success and -1 when a scratch
 * allocation failed; they never read or write outside the described arrays.
 */
#ifndef MINIGRAD_KERNELS_H
#define MINIGRAD_KERNELS_H

#include <stddef.h>

/* Bump whenever a declaration below changes meaning; minigrad._backend refuses a build with another value. */
#define MG_ABI_VERSION 5

typedef ptrdiff_t mg_int;

/* Kernel paths, slowest first. */
enum { MG_ISA_PORTABLE = 0, MG_ISA_AVX2 = 1, MG_ISA_AVX512 = 2, MG_ISA_COUNT = 3 };

int mg_isa_supported(int isa);
int mg_best_isa(void);
int mg_get_isa(void);
/* Returns -1 (and changes nothing) when the CPU lacks the requested path. */
int mg_set_isa(int isa);

/* 1 when built with thread support (minigrad's own pool, _ext/cpu.c); the name is historical. */
int mg_openmp(void);
int mg_get_num_threads(void);
void mg_set_num_threads(int n);

/* C[b] (=|+=) A[b] @ B[b] for b < batch, with A[b] (M, K), B[b] (K, N), C[b] (M, N).
 * A batch stride of 0 broadcasts that operand.  C must not overlap A or B, nor itself. */
int mg_matmul_f32(mg_int batch, mg_int M, mg_int N, mg_int K,
                  const float *A, mg_int sab, mg_int sam, mg_int sak,
                  const float *B, mg_int sbb, mg_int sbk, mg_int sbn,
                  float *C, mg_int scb, mg_int scm, mg_int scn, int accumulate);
int mg_matmul_f64(mg_int batch, mg_int M, mg_int N, mg_int K,
                  const double *A, mg_int sab, mg_int sam, mg_int sak,
                  const double *B, mg_int sbb, mg_int sbk, mg_int sbn,
                  double *C, mg_int scb, mg_int scm, mg_int scn, int accumulate);

/* A right operand B (K, N) packed once into the layout a kernel path's micro-kernel reads, for products
 * that reuse it (a recurrent weight multiplies every time step).  mg_packed_len gives the elements dst needs
 * (-1 for a bad isa); mg_pack_b copies B (any strides) into dst; mg_matmul_packed is mg_matmul with that B
 * shared by the whole batch, computed on the packing's path: the same bits as mg_matmul on that path. */
mg_int mg_packed_len_f32(int isa, mg_int K, mg_int N);
mg_int mg_packed_len_f64(int isa, mg_int K, mg_int N);
void mg_pack_b_f32(int isa, mg_int K, mg_int N, const float *B, mg_int sbk, mg_int sbn, float *dst);
void mg_pack_b_f64(int isa, mg_int K, mg_int N, const double *B, mg_int sbk, mg_int sbn, double *dst);
int mg_matmul_packed_f32(int isa, mg_int batch, mg_int M, mg_int N, mg_int K,
                         const float *A, mg_int sab, mg_int sam, mg_int sak, const float *P,
                         float *C, mg_int scb, mg_int scm, mg_int scn, int accumulate);
int mg_matmul_packed_f64(int isa, mg_int batch, mg_int M, mg_int N, mg_int K,
                         const double *A, mg_int sab, mg_int sam, mg_int sak, const double *P,
                         double *C, mg_int scb, mg_int scm, mg_int scn, int accumulate);

/* C = Cin + A @ B for A (M, K), B (K, N), Cin and C (M, N), 2-D: the same bits as copying Cin into C and
 * accumulating the product into it, in one pass over C.  Cin may broadcast (strides 0) but must not overlap
 * C.  B is either (B, sbk, sbn) or, when P is not NULL, the packing P of mg_pack_b made on path `isa` (which
 * the product then runs on; isa is ignored when P is NULL).  With tanh_out, C = tanh(Cin + A @ B): the bits
 * of mg_tanh applied to that result afterwards, each block mapped as the product finishes it. */
int mg_addmm_f32(int isa, mg_int M, mg_int N, mg_int K, const float *Cin, mg_int sim, mg_int sin,
                 const float *A, mg_int sam, mg_int sak, const float *B, mg_int sbk, mg_int sbn, const float *P,
                 float *C, mg_int scm, mg_int scn, int tanh_out);
int mg_addmm_f64(int isa, mg_int M, mg_int N, mg_int K, const double *Cin, mg_int sim, mg_int sin,
                 const double *A, mg_int sam, mg_int sak, const double *B, mg_int sbk, mg_int sbn, const double *P,
                 double *C, mg_int scm, mg_int scn, int tanh_out);

/* `count` such products of one shape and one set of strides, B packed (P[i] on path isa), as one parallel
 * job: C[i] = Cin[i] + A[i] @ P[i] (tanh of it with tanh_out), the bits of mg_addmm on each.  The C[i] must
 * not overlap each other or any operand. */
int mg_addmm_many_f32(int isa, mg_int count, mg_int M, mg_int N, mg_int K, const float *const *Cin, mg_int sim,
                      mg_int sin, const float *const *A, mg_int sam, mg_int sak, const float *const *P,
                      float *const *C, mg_int scm, mg_int scn, int tanh_out);
int mg_addmm_many_f64(int isa, mg_int count, mg_int M, mg_int N, mg_int K, const double *const *Cin, mg_int sim,
                      mg_int sin, const double *const *A, mg_int sam, mg_int sak, const double *const *P,
                      double *const *C, mg_int scm, mg_int scn, int tanh_out);

/* An Elman RNN layer's products over L steps, `count` directions, as ONE parallel job: per step s and
 * direction d, with t = s (L - 1 - s when reverse[d]), C[d] + t*ots = Cin[d] + t*cts + A @ P[d] (tanh of it
 * with tanh_out), A the state before: H0[d] at s = 0, else the step before's C.  Every matrix (M, N) has
 * unit column stride; Cin's rows are sim apart, H0's shm and C's som; P[d] is an N x N operand packed for
 * `isa`.  The bits of mg_addmm step by step.  No C may overlap another C or an operand. */
int mg_addmm_seq_f32(int isa, mg_int count, mg_int L, mg_int M, mg_int N, const float *const *Cin, mg_int cts,
                     mg_int sim, const float *const *H0, mg_int shm, const float *const *P, float *const *C,
                     mg_int ots, mg_int som, const int *reverse, int tanh_out);
int mg_addmm_seq_f64(int isa, mg_int count, mg_int L, mg_int M, mg_int N, const double *const *Cin, mg_int cts,
                     mg_int sim, const double *const *H0, mg_int shm, const double *const *P, double *const *C,
                     mg_int ots, mg_int som, const int *reverse, int tanh_out);

/* Test hook: the judge of whether sharing a job pays (mg_internal.h's mg_share_judge, what each threading
 * runtime runs after a shared job) on n synthetic jobs from a fresh state, on a clock of its own that starts
 * at 0.  jobs[6k .. 6k+5] = job k's idle gap before it, its wall time, the time of the caller's own tasks (ns),
 * how many tasks the caller ran, how many there were, and whether the job woke helpers (0 or 1); a job that
 * starts while sharing is paused runs on the caller alone, judged by nobody.  paused_for[k]: after job k,
 * how long sharing stays paused (0: sharing). */
void mg_share_trace(mg_int n, const long long *jobs, long long *paused_for);
/* Whether the pool found its threads' cores far apart in its last window of hand-offs (mg_internal.h:
 * mg_distance_state); and, as a test hook, a fresh estimate's verdict after each of the hand-off latencies
 * ns[0..n) (far[k]: 1 far, 0 near). */
int mg_threads_far(void);
void mg_distance_trace(mg_int n, const long long *ns, int *far);

/* An LSTM layer's forward over whole sequences as one parallel job (count directions, the same bits as the
 * loop of mg_addmm and mg_lstm_forward it replaces): per direction d, for each step s of L, with t = s
 * (L - 1 - s when reverse[d]),
 *     Act[d][t] = Xg[d][t] + h @ P[d]   (the gates i, f, g, o; P packed, H x 4H), then in place
 *     Act[d][t], C[d][t], Tc[d][t], Out[d][t] = mg_lstm_forward(Act[d][t], c)
 * where h, c are H0[d], C0[d] at the first step and then the step before's Out[d], C[d].  Xg[d] (L, M, 4H):
 * steps xts and rows xm elements apart, unit column stride (xts may be 0); H0, C0 (M, H): rows shm / scm
 * apart; Out[d] (L, M, H): steps ots, rows som apart; Act (L, M, 4H), C and Tc (L, M, H) contiguous.  No
 * output overlaps an operand or another output.  -1 when scratch could not be allocated. */
int mg_lstm_seq_f32(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const float *const *Xg, mg_int xts,
                    mg_int xm, const float *const *H0, mg_int shm, const float *const *C0, mg_int scm,
                    const float *const *P, float *const *Act, float *const *C, float *const *Tc, float *const *Out,
                    mg_int ots, mg_int som, const int *reverse);
int mg_lstm_seq_f64(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const double *const *Xg, mg_int xts,
                    mg_int xm, const double *const *H0, mg_int shm, const double *const *C0, mg_int scm,
                    const double *const *P, double *const *Act, double *const *C, double *const *Tc,
                    double *const *Out, mg_int ots, mg_int som, const int *reverse);

/* A GRU layer's forward over whole sequences as one parallel job (the same bits as the loop of mg_addmm and
 * mg_gru_forward it replaces): per direction d, for each step s of L, with t = s (L - 1 - s when reverse[d]),
 *     Hg[d][t] = Bh[d] + h @ P[d]   (P packed, H x 3H; Bh: b_hh's rows, (M, 3H), rows bm apart, bm may be 0)
 *     Act[d][t], Out[d][t] = mg_gru_forward(Xg[d][t], Hg[d][t], h)
 * where h is H0[d] at the first step and then the step before's Out[d].  Xg (L, M, 3H) as mg_lstm_seq's;
 * Hg and Act (L, M, 3H) contiguous; Out as mg_lstm_seq's.  -1 when scratch could not be allocated. */
int mg_gru_seq_f32(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const float *const *Xg, mg_int xts,
                   mg_int xm, const float *const *Bh, mg_int bm, const float *const *H0, mg_int shm,
                   const float *const *P, float *const *Hg, float *const *Act, float *const *Out, mg_int ots,
                   mg_int som, const int *reverse);
int mg_gru_seq_f64(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const double *const *Xg, mg_int xts,
                   mg_int xm, const double *const *Bh, mg_int bm, const double *const *H0, mg_int shm,
                   const double *const *P, double *const *Hg, double *const *Act, double *const *Out, mg_int ots,
                   mg_int som, const int *reverse);

/* The backward of n steps of an LSTM layer (mg_lstm_seq's), in the order the backward meets them (the last
 * step first), as one parallel job with the bits of the loop of mg_addmm (mg_matmul without G[k]) and
 * mg_lstm_backward it replaces: for k = 0 .. n-1,
 *     dh = G[k] + DG[k - 1] @ P  (the product left out at k = 0; G[k] alone where it is NULL, k > 0),
 *     DG[k], dc' = mg_lstm_backward(dh, dc, Act[k], Cp[k], Tc[k])
 * with dc = DC at k = 0 (NULL: none) and then the step before's dc', the last step's dc' written to DCP.
 * G[k] is step k's h gradient from elsewhere (k = 0: its whole gradient, not NULL), P = pack(W_hh)
 * (4H x H).  Every matrix is (M, H) or (M, 4H) with unit column stride, its rows the given number of
 * elements apart; the outputs DG[k] and DCP overlap no input and no other output.  -1 when scratch could
 * not be allocated. */
int mg_lstm_seq_backward_f32(int isa, mg_int n, mg_int M, mg_int H, const float *const *G, const mg_int *gs,
                             const float *DC, mg_int dcs, const float *const *Act, const mg_int *as,
                             const float *const *Cp, const mg_int *cps, const float *const *Tc, const mg_int *tcs,
                             const float *P, float *const *DG, const mg_int *dgs, float *DCP, mg_int dcps);
int mg_lstm_seq_backward_f64(int isa, mg_int n, mg_int M, mg_int H, const double *const *G, const mg_int *gs,
                             const double *DC, mg_int dcs, const double *const *Act, const mg_int *as,
                             const double *const *Cp, const mg_int *cps, const double *const *Tc,
                             const mg_int *tcs, const double *P, double *const *DG, const mg_int *dgs, double *DCP,
                             mg_int dcps);

/* The backward of n steps of a GRU layer (mg_gru_seq's), in the order the backward meets them (the last step
 * first), as one parallel job with the bits of the engine's node-by-node backward it replaces: for k = 0 ..
 * n-1,
 *     dh = (G[k] + direct) + DHG[k - 1] @ P  (dh = G[0] at k = 0; direct + DHG[k - 1] @ P where G[k] is NULL)
 *     DX[k], DHG[k], direct' = mg_gru_backward(dh, Act[k], Hn[k], Hp[k])
 * with direct = the step before's direct' (h's gradient through z * h), the last step's written to DHP.
 * G[k]: step k's h gradient from elsewhere (G[0] not NULL); Act (M, 3H), Hn (the n section of hg) and Hp
 * (the previous state) (M, H), as mg_gru_backward's; P = pack(W_hh) (3H x H).  Unit column strides, rows
 * the given number of elements apart; the outputs DX, DHG (M, 3H) and DHP (M, H) overlap no input and no
 * other output.  -1 when scratch could not be allocated. */
int mg_gru_seq_backward_f32(int isa, mg_int n, mg_int M, mg_int H, const float *const *G, const mg_int *gs,
                            const float *const *Act, const mg_int *as, const float *const *Hn, const mg_int *hns,
                            const float *const *Hp, const mg_int *hps, const float *P, float *const *DX,
                            const mg_int *dxs, float *const *DHG, const mg_int *dhgs, float *DHP, mg_int dhps);
int mg_gru_seq_backward_f64(int isa, mg_int n, mg_int M, mg_int H, const double *const *G, const mg_int *gs,
                            const double *const *Act, const mg_int *as, const double *const *Hn, const mg_int *hns,
                            const double *const *Hp, const mg_int *hps, const double *P, double *const *DX,
                            const mg_int *dxs, double *const *DHG, const mg_int *dhgs, double *DHP, mg_int dhps);

/* The backward of n tanh steps of an Elman RNN layer (mg_addmm_seq's), in the order the backward meets them
 * (the last step first): with dz[-1] = 0, for s = 0 .. n-1,
 *     DZ[s] = (G[s] + dz[s - 1] @ P) * (1 - Y[s]^2)       (G[s] + ... left out for s = 0, and when G[s] is NULL)
 * where Y[s] is step s's output, G[s] the gradient of that output from elsewhere (s = 0: its whole gradient)
 * and P the packed W_hh (N x N, the transposed operand of the forward's products, packed for `isa`).  The bits
 * of mg_addmm then mg_tanh_backward step by step.  Every matrix is (M, N) with unit column stride, its rows gs[s],
 * ys[s], ds[s] elements apart; no DZ may overlap another DZ, a G or a Y. */
int mg_tanh_seq_backward_f32(int isa, mg_int n, mg_int M, mg_int N, const float *const *G, const mg_int *gs,
                             const float *const *Y, const mg_int *ys, const float *P, float *const *DZ,
                             const mg_int *ds);
int mg_tanh_seq_backward_f64(int isa, mg_int n, mg_int M, mg_int N, const double *const *G, const mg_int *gs,
                             const double *const *Y, const mg_int *ys, const double *P, double *const *DZ,
                             const mg_int *ds);

/* C (=|+=) A.T @ B for A (K, M) and B (K, N) given row by row: row k of A is the M elements at arows[k],
 * row k of B the N elements at brows[k] (each contiguous; rows may lie anywhere).  So sum_i A_i.T @ B_i
 * over several pairs of factors, the weight gradient of a product used at many time steps, is one product
 * without stacking the factors first: the same bits as mg_matmul on the stacked arrays.  C is (M, N) with
 * row stride scm and contiguous rows, overlapping no row.  Returns -1 when an allocation failed. */
int mg_matmul_rows_f32(mg_int M, mg_int N, mg_int K, const float *const *arows, const float *const *brows,
                       float *C, mg_int scm, int accumulate);
int mg_matmul_rows_f64(mg_int M, mg_int N, mg_int K, const double *const *arows, const double *const *brows,
                       double *C, mg_int scm, int accumulate);

/* Contiguous elementwise kernels: y may be x itself (and out may be g or y), but no partial overlap. */
void mg_tanh_f32(mg_int n, const float *x, float *y);
void mg_tanh_f64(mg_int n, const double *x, double *y);
/* out = g * (1 - y*y), the derivative of tanh from its saved output y. */
void mg_tanh_backward_f32(mg_int n, const float *g, const float *y, float *out);
void mg_tanh_backward_f64(mg_int n, const double *g, const double *y, double *out);
/* The same for `rows` rows of `cols` contiguous elements whose rows lie xs (gs), ys, os elements apart: one
 * call, cut into blocks of rows for the threads where a contiguous array of rows * cols elements would be. */
void mg_tanh_rows_f32(mg_int rows, mg_int cols, const float *x, mg_int xs, float *y, mg_int ys);
void mg_tanh_rows_f64(mg_int rows, mg_int cols, const double *x, mg_int xs, double *y, mg_int ys);
void mg_tanh_backward_rows_f32(mg_int rows, mg_int cols, const float *g, mg_int gs, const float *y, mg_int ys,
                               float *out, mg_int os);
void mg_tanh_backward_rows_f64(mg_int rows, mg_int cols, const double *g, mg_int gs, const double *y, mg_int ys,
                               double *out, mg_int os);

/* The logistic sigmoid 1 / (1 + exp(-x)) (sigmoid.c), at most 2 ulp from exact, subnormal results included;
 * y may be x itself. */
void mg_sigmoid_f32(mg_int n, const float *x, float *y);
void mg_sigmoid_f64(mg_int n, const double *x, double *y);
/* out = (g * y) * (1 - y), the derivative of sigmoid from its saved output y. */
void mg_sigmoid_backward_f32(mg_int n, const float *g, const float *y, float *out);
void mg_sigmoid_backward_f64(mg_int n, const double *g, const double *y, double *out);
/* Both row by row, as mg_tanh_rows and mg_tanh_backward_rows. */
void mg_sigmoid_rows_f32(mg_int rows, mg_int cols, const float *x, mg_int xs, float *y, mg_int ys);
void mg_sigmoid_rows_f64(mg_int rows, mg_int cols, const double *x, mg_int xs, double *y, mg_int ys);
void mg_sigmoid_backward_rows_f32(mg_int rows, mg_int cols, const float *g, mg_int gs, const float *y, mg_int ys,
                                  float *out, mg_int os);
void mg_sigmoid_backward_rows_f64(mg_int rows, mg_int cols, const double *g, mg_int gs, const double *y,
                                  mg_int ys, double *out, mg_int os);

/* out = a (op) b elementwise (arith.c), op one of MG_OP_*: a and b each contiguous (sa, sb = 1) or one value
 * (0); out contiguous, n elements, and may be a or b itself (when contiguous), but no partial overlap. */
enum { MG_OP_ADD = 0, MG_OP_SUB = 1, MG_OP_MUL = 2, MG_OP_DIV = 3 };
void mg_arith_f32(int op, mg_int n, const float *a, int sa, const float *b, int sb, float *out);
void mg_arith_f64(int op, mg_int n, const double *a, int sa, const double *b, int sb, double *out);
/* The same on one thread, over rows x cols: row r of a starts ra elements after row r - 1's (0: every row
 * reads the same one), as does b's (rb); out is contiguous and overlaps neither operand unless it is one of
 * them.  The loop of ops/fast.pyx's small elementwise ops. */
void mg_arith_rows_f32(int op, mg_int rows, mg_int cols, const float *a, mg_int ra, int sa, const float *b,
                       mg_int rb, int sb, float *out);
void mg_arith_rows_f64(int op, mg_int rows, mg_int cols, const double *a, mg_int ra, int sa, const double *b,
                       mg_int rb, int sb, double *out);
/* Both, for another extension module: _kernels.arith_rows_api is a capsule (named as below) of one. */
#define MG_ARITH_ROWS_CAPSULE "minigrad._kernels.arith_rows_api"
typedef struct {
    void (*f32)(int, mg_int, mg_int, const float *, mg_int, int, const float *, mg_int, int, float *);
    void (*f64)(int, mg_int, mg_int, const double *, mg_int, int, const double *, mg_int, int, double *);
} mg_arith_rows_api;

/* The gated cells' elementwise epilogues (gates.c), B rows of H-wide gate sections in torch's order, every
 * operand's rows contiguous and the given number of elements apart.  Each result has the bits of the plain
 * ops on the current path: mg_sigmoid / mg_tanh (and their backward) and IEEE products and sums, one
 * rounding each, in the order written.  Outputs overlap no input and no other output, except that act may
 * be gates itself (LSTM forward).
 * LSTM forward: gates (B, 4H) pre-activations (i, f, g, o), c_prev (B, H) ->
 *     act = [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)], c = f*c_prev + i*g, tanh_c = tanh(c),
 *     h = o*tanh_c. */
void mg_lstm_forward_f32(mg_int B, mg_int H, const float *gates, mg_int gs, const float *c_prev, mg_int cps,
                         float *act, mg_int as, float *c, mg_int cs, float *tanh_c, mg_int tcs, float *h, mg_int hs);
void mg_lstm_forward_f64(mg_int B, mg_int H, const double *gates, mg_int gs, const double *c_prev, mg_int cps,
                         double *act, mg_int as, double *c, mg_int cs, double *tanh_c, mg_int tcs, double *h,
                         mg_int hs);
/* LSTM backward: dh, dc (NULL: no gradient from later steps) -> with dct = dc + tanh_backward(dh*o, tanh_c):
 *     d_gates = [sigmoid_backward(dct*g, i), sigmoid_backward(dct*c_prev, f), tanh_backward(dct*i, g),
 *                sigmoid_backward(dh*tanh_c, o)], dc_prev = dct*f. */
void mg_lstm_backward_f32(mg_int B, mg_int H, const float *dh, mg_int dhs, const float *dc, mg_int dcs,
                          const float *act, mg_int as, const float *c_prev, mg_int cps, const float *tanh_c,
                          mg_int tcs, float *d_gates, mg_int dgs, float *dc_prev, mg_int dcps);
void mg_lstm_backward_f64(mg_int B, mg_int H, const double *dh, mg_int dhs, const double *dc, mg_int dcs,
                          const double *act, mg_int as, const double *c_prev, mg_int cps, const double *tanh_c,
                          mg_int tcs, double *d_gates, mg_int dgs, double *dc_prev, mg_int dcps);
/* GRU forward: xg = x W_ih.T + b_ih and hg = h_prev W_hh.T + b_hh (B, 3H), sections (r, z, n) ->
 *     act = [r, z, n] with r = sigmoid(xg_r + hg_r), z = sigmoid(xg_z + hg_z), n = tanh(xg_n + r*hg_n),
 *     h = (1 - z)*n + z*h_prev. */
void mg_gru_forward_f32(mg_int B, mg_int H, const float *xg, mg_int xs, const float *hg, mg_int hgs,
                        const float *h_prev, mg_int hps, float *act, mg_int as, float *h, mg_int hs);
void mg_gru_forward_f64(mg_int B, mg_int H, const double *xg, mg_int xs, const double *hg, mg_int hgs,
                        const double *h_prev, mg_int hps, double *act, mg_int as, double *h, mg_int hs);
/* GRU backward: dh, act, hn = hg's n section, h_prev -> with dn = tanh_backward(dh*(1 - z), n),
 *     d_xg = [sigmoid_backward(dn*hn, r), sigmoid_backward(dh*h_prev - dh*n, z), dn],
 *     d_hg = [the same r and z sections, dn*r], dh_prev = dh*z (the direct path only). */
void mg_gru_backward_f32(mg_int B, mg_int H, const float *dh, mg_int dhs, const float *act, mg_int as,
                         const float *hn, mg_int hns, const float *h_prev, mg_int hps, float *d_xg, mg_int dxs,
                         float *d_hg, mg_int dhgs, float *dh_prev, mg_int dhps);
void mg_gru_backward_f64(mg_int B, mg_int H, const double *dh, mg_int dhs, const double *act, mg_int as,
                         const double *hn, mg_int hns, const double *h_prev, mg_int hps, double *d_xg, mg_int dxs,
                         double *d_hg, mg_int dhgs, double *dh_prev, mg_int dhps);

/* Squared error (loss.c): diff = x - t and *sum = sum(diff^2) (accumulated in double) in one pass; -1 when an
 * allocation failed.  Contiguous arrays. */
int mg_sub_sqsum_f32(mg_int n, const float *x, const float *t, float *diff, double *sum);
int mg_sub_sqsum_f64(mg_int n, const double *x, const double *t, double *diff, double *sum);

/* Column sums (reduce.c): out[j] = sum_i A[i, j] for the M x N matrix A with rows sam elements apart and
 * contiguous columns; out has N elements (zeros when M == 0).  The order of the additions is fixed (see
 * reduce.c): the same bits at every thread count and on every ISA path. */
void mg_sum_rows_f32(mg_int M, mg_int N, const float *a, mg_int sam, float *out);
void mg_sum_rows_f64(mg_int M, mg_int N, const double *a, mg_int sam, double *out);

/* The caching allocator behind numpy's data buffers (alloc.c), with the signatures of numpy's
 * PyDataMemAllocator.  mg_cache_set_limit bounds the bytes kept idle (0: keep none). */
void *mg_cache_malloc(void *ctx, size_t size);
void *mg_cache_calloc(void *ctx, size_t nelem, size_t elsize);
void *mg_cache_realloc(void *ctx, void *ptr, size_t new_size);
void mg_cache_free(void *ctx, void *ptr, size_t size);
void mg_cache_empty(void);
void mg_cache_set_limit(size_t bytes);
void mg_cache_stats(size_t *idle, size_t *blocks, size_t *limit, unsigned long long *hits,
                    unsigned long long *misses);

#endif
