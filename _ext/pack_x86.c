/* Packers for B panels.  An operand whose k dimension is contiguous (a transposed B, as in x @ W.T): blocks
 * of 8 x 8 (float) or 4 x 4 (double) are transposed in registers, several times faster than the scalar
 * strided copy (AVX2 and AVX-512 paths; every AVX-512 CPU has AVX2).  A row-major B, or one given as a
 * table of rows: vector copies, masked for a narrow panel (both paths).  On the AVX2 path against the scalar
 * copy, two threads of an AMD EPYC (family 25, model 1), both ways alternating in one process: float32
 * 256^3 1.08x, 1024^3 1.04x, x.T @ dz (64 x 2048 @ 2048 x 512) 1.04x; float64 1024^3 1.08x, x.T @ dz 1.17x,
 * matmul_stacked_t of dz.T @ h (M = 512, K = 2048, N = 128) 1.10x. */
#include "mg_internal.h"

#if MG_X86
#include <immintrin.h>

MG_TARGET_AVX2 void mg_pack_t_f32(MG_PACK_ARGS(float))
{
    (void)sk;
    mg_int j = 0;
    for (; j + 8 <= w; j += 8) {
        const float *s = src + j * sw;
        mg_int k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r0 = _mm256_loadu_ps(s + k), r1 = _mm256_loadu_ps(s + sw + k);
            __m256 r2 = _mm256_loadu_ps(s + 2 * sw + k), r3 = _mm256_loadu_ps(s + 3 * sw + k);
            __m256 r4 = _mm256_loadu_ps(s + 4 * sw + k), r5 = _mm256_loadu_ps(s + 5 * sw + k);
            __m256 r6 = _mm256_loadu_ps(s + 6 * sw + k), r7 = _mm256_loadu_ps(s + 7 * sw + k);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + k * W + j;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + W, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * W, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * W, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * W, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * W, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * W, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * W, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (; k < kc; ++k)
            for (mg_int jj = 0; jj < 8; ++jj)
                dst[k * W + j + jj] = s[jj * sw + k];
    }
    for (; j < w; ++j)
        for (mg_int k = 0; k < kc; ++k)
            dst[k * W + j] = src[j * sw + k];
    for (mg_int k = 0; w < W && k < kc; ++k)
        for (mg_int jj = w; jj < W; ++jj)
            dst[k * W + jj] = 0;
}

MG_TARGET_AVX2 void mg_pack_t_f64(MG_PACK_ARGS(double))
{
    (void)sk;
    mg_int j = 0;
    for (; j + 4 <= w; j += 4) {
        const double *s = src + j * sw;
        mg_int k = 0;
        for (; k + 4 <= kc; k += 4) {
            const __m256d r0 = _mm256_loadu_pd(s + k), r1 = _mm256_loadu_pd(s + sw + k);
            const __m256d r2 = _mm256_loadu_pd(s + 2 * sw + k), r3 = _mm256_loadu_pd(s + 3 * sw + k);
            const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double *d = dst + k * W + j;
            _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(d + W, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(d + 2 * W, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(d + 3 * W, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
        for (; k < kc; ++k)
            for (mg_int jj = 0; jj < 4; ++jj)
                dst[k * W + j + jj] = s[jj * sw + k];
    }
    for (; j < w; ++j)
        for (mg_int k = 0; k < kc; ++k)
            dst[k * W + j] = src[j * sw + k];
    for (mg_int k = 0; w < W && k < kc; ++k)
        for (mg_int jj = w; jj < W; ++jj)
            dst[k * W + jj] = 0;
}
#endif

#if MG_X86
/* Row-major operand (sw == 1): each packed row is a masked copy of w contiguous elements, zero-filled to W.
 * W is at most four vectors (the AVX-512 micro-kernels' NR: 64 floats / 32 doubles).  ROW(k) is where
 * packed row k comes from: src + k * sk, or a row table's rows[k] + off. */
#define PACK_N_BODY(LANES, MASK_T, LOAD, STORE, ROW)                                        \
    MASK_T m[4];                                                                            \
    for (int v = 0; v < 4; ++v) {                                                           \
        const mg_int lo = v * LANES, n = w - lo < 0 ? 0 : w - lo > LANES ? LANES : w - lo;  \
        m[v] = (MASK_T)((1ull << n) - 1);                                                   \
    }                                                                                       \
    const int nv = (int)((W + LANES - 1) / LANES);                                          \
    const MASK_T full = (MASK_T)((1ull << (W - (nv - 1) * LANES)) - 1);                     \
    for (mg_int k = 0; k < kc; ++k) {                                                       \
        const __typeof__(*dst) *s = (ROW);                                                  \
        __typeof__(dst) d = dst + k * W;                                                    \
        for (int v = 0; v < nv; ++v)                                                        \
            STORE(d + v * LANES, v == nv - 1 ? full : (MASK_T)~(MASK_T)0,                   \
                  LOAD(m[v], s + v * LANES));                                               \
    }

MG_TARGET_AVX512 void mg_pack_n_avx512_f32(MG_PACK_ARGS(float))
{
    (void)sw;
    PACK_N_BODY(16, __mmask16, _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, src + k * sk)
}

MG_TARGET_AVX512 void mg_pack_n_avx512_f64(MG_PACK_ARGS(double))
{
    (void)sw;
    PACK_N_BODY(8, __mmask8, _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, src + k * sk)
}

MG_TARGET_AVX512 void mg_pack_rows_avx512_f32(MG_PACK_ROWS_ARGS(float))
{
    PACK_N_BODY(16, __mmask16, _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, rows[k] + off)
}

MG_TARGET_AVX512 void mg_pack_rows_avx512_f64(MG_PACK_ROWS_ARGS(double))
{
    PACK_N_BODY(8, __mmask8, _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, rows[k] + off)
}
#endif

#if MG_X86
/* The AVX2 path's row-major packer: PACK_N_BODY with AVX2's masked loads (a lane mask as a vector) for a
 * panel narrower than W, plain loads for a full one (a B panel inside the matrix, the common case).  W is at
 * most two vectors (the AVX2 micro-kernels' NR: 16 floats / 8 doubles); a W that is not a whole number of
 * vectors (an A panel, mr = 6) stores its last vector under a mask, so nothing past row k's W is written. */
#define PACK_N_AVX2_BODY(LANES, V, LOADU, STOREU, MLOAD, MSTORE, ROW)                       \
    const int nv = (int)((W + LANES - 1) / LANES), tail = (int)(W - (nv - 1) * LANES);      \
    __m256i m[2], st = lane_mask##LANES(tail);                                              \
    for (int v = 0; v < 2; ++v)                                                             \
        m[v] = lane_mask##LANES((int)(w - v * LANES));                                      \
    for (mg_int k = 0; k < kc; ++k) {                                                       \
        const __typeof__(*dst) *s = (ROW);                                                  \
        __typeof__(dst) d = dst + k * W;                                                    \
        for (int v = 0; v < nv; ++v) {                                                      \
            const V x = w == W ? LOADU(s + v * LANES) : MLOAD(s + v * LANES, m[v]);         \
            if (v == nv - 1 && tail != LANES)                                               \
                MSTORE(d + v * LANES, st, x);                                               \
            else                                                                            \
                STOREU(d + v * LANES, x);                                                   \
        }                                                                                   \
    }

/* lanes [0, n) of an AVX2 mask: all ones, the rest zero */
MG_TARGET_AVX2 static inline __m256i lane_mask8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

MG_TARGET_AVX2 static inline __m256i lane_mask4(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

MG_TARGET_AVX2 void mg_pack_n_avx2_f32(MG_PACK_ARGS(float))
{
    (void)sw;
    PACK_N_AVX2_BODY(8, __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_maskload_ps, _mm256_maskstore_ps,
                     src + k * sk)
}

MG_TARGET_AVX2 void mg_pack_n_avx2_f64(MG_PACK_ARGS(double))
{
    (void)sw;
    PACK_N_AVX2_BODY(4, __m256d, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_maskload_pd, _mm256_maskstore_pd,
                     src + k * sk)
}

MG_TARGET_AVX2 void mg_pack_rows_avx2_f32(MG_PACK_ROWS_ARGS(float))
{
    PACK_N_AVX2_BODY(8, __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_maskload_ps, _mm256_maskstore_ps,
                     rows[k] + off)
}

MG_TARGET_AVX2 void mg_pack_rows_avx2_f64(MG_PACK_ROWS_ARGS(double))
{
    PACK_N_AVX2_BODY(4, __m256d, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_maskload_pd, _mm256_maskstore_pd,
                     rows[k] + off)
}
#endif
