/* AVX2+FMA GEMM micro-kernels: 6 x 16 (float32) and 6 x 8 (float64) tiles of C in 12 ymm accumulators.
 * Laid out as the AVX-512 ones: a full-width k loop, and a masked one for an N tail, so that B may be read
 * in place (an unpacked B ends at its nr-th column: lanes past it are never loaded). */
#include "mg_internal.h"

#if MG_X86
#include <immintrin.h>

#define DECL_ROW(r) V_T c##r##0 = ZERO(), c##r##1 = ZERO()
#define FMA_ROW(r)                                                                          \
    do {                                                                                    \
        if ((r) >= rows)                                                                    \
            break;                                                                          \
        const V_T av = BCAST(a + (r) * ars + ka);                                           \
        c##r##0 = FMADD(av, b0, c##r##0);                                                   \
        c##r##1 = FMADD(av, b1, c##r##1);                                                   \
    } while (0)
/* Full vectors use plain loads and stores: masked stores are slow on AMD cores.  q: the same vector of the
 * addend (ci), or NULL. */
#define STORE1(p, q, v, m, full)                                                            \
    do {                                                                                    \
        if (full)                                                                           \
            STOREU(p, (q) ? ADD(LOADU(q), v) : overwrite ? (v) : ADD(LOADU(p), v));         \
        else                                                                                \
            MSTORE(p, m, (q) ? ADD(MLOAD(q, m), v) : overwrite ? (v) : ADD(MLOAD(p, m), v)); \
    } while (0)
#define STORE_ROW(r)                                                                        \
    do {                                                                                    \
        if ((r) < rows && (r) < mr) {                                                       \
            E_T *cr = c + (r) * rsc;                                                        \
            const E_T *qr = ci ? ci + (r) * rsi : NULL;                                     \
            STORE1(cr, qr, c##r##0, m0, nr >= W);                                           \
            if (nr > W)                                                                     \
                STORE1(cr + W, qr ? qr + W : NULL, c##r##1, m1, nr == 2 * W);               \
        }                                                                                   \
    } while (0)
#define SPILL_ROW(r)                                                                        \
    do {                                                                                    \
        STOREU(tile + (r) * 2 * W, c##r##0);                                                \
        STOREU(tile + (r) * 2 * W + W, c##r##1);                                            \
    } while (0)

/* The C tile (and the addend's) is requested before the k loop, so that its update after the loop does not
 * wait on memory: a row of the tile is 64 bytes, at most two lines. */
#define PREFETCH_C                                                                          \
    if (csc == 1)                                                                           \
        for (mg_int r_ = 0; r_ < mr; ++r_) {                                                \
            _mm_prefetch((const char *)(c + r_ * rsc), _MM_HINT_T0);                        \
            _mm_prefetch((const char *)(c + r_ * rsc + 2 * W - 1), _MM_HINT_T0);            \
            if (ci) {                                                                       \
                _mm_prefetch((const char *)(ci + r_ * rsi), _MM_HINT_T0);                   \
                _mm_prefetch((const char *)(ci + r_ * rsi + 2 * W - 1), _MM_HINT_T0);       \
            }                                                                               \
        }
#define UKR_BODY                                                                            \
    DECL_ROW(0); DECL_ROW(1); DECL_ROW(2); DECL_ROW(3); DECL_ROW(4); DECL_ROW(5);           \
    const I_T m0 = LANEMASK(nr), m1 = LANEMASK(nr - W);                                     \
    PREFETCH_C                                                                              \
    if (nr == 2 * W) {                                                                      \
        for (mg_int k = 0, ka = 0, kb = 0; k < kc; ++k, ka += aks, kb += bks) {             \
            const V_T b0 = LOADU(b + kb), b1 = LOADU(b + kb + W);                           \
            FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);         \
        }                                                                                   \
    } else {                                                                                \
        for (mg_int k = 0, ka = 0, kb = 0; k < kc; ++k, ka += aks, kb += bks) {             \
            const V_T b0 = MLOAD(b + kb, m0), b1 = MLOAD(b + kb + W, m1);                   \
            FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);         \
        }                                                                                   \
    }                                                                                       \
    if (csc == 1) {                                                                         \
        STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3); STORE_ROW(4); STORE_ROW(5); \
    } else {                                                                                \
        E_T tile[6 * 2 * W];                                                                \
        SPILL_ROW(0); SPILL_ROW(1); SPILL_ROW(2); SPILL_ROW(3); SPILL_ROW(4); SPILL_ROW(5); \
        for (mg_int i = 0; i < mr; ++i)                                                     \
            for (mg_int j = 0; j < nr; ++j) {                                               \
                E_T *p = c + i * rsc + j * csc;                                             \
                const E_T v_ = tile[i * 2 * W + j];                                         \
                *p = ci ? ci[i * rsi + j] + v_ : overwrite ? v_ : *p + v_;                  \
            }                                                                               \
    }

#define W 8
#define E_T float
#define V_T __m256
#define I_T __m256i
#define ZERO _mm256_setzero_ps
#define BCAST _mm256_broadcast_ss
#define FMADD _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define LOADU _mm256_loadu_ps
#define STOREU _mm256_storeu_ps
#define MLOAD _mm256_maskload_ps
#define MSTORE _mm256_maskstore_ps
#define LANEMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
MG_TARGET_AVX2 static inline __attribute__((always_inline)) void ukr_f32(const int rows, MG_UKR_ARGS(float))
{
    UKR_BODY
}
MG_TARGET_AVX2 void mg_ukr_avx2_f32(MG_UKR_ARGS(float)) { MG_UKR_BY_ROWS(ukr_f32); }
#undef W
#undef E_T
#undef V_T
#undef ZERO
#undef BCAST
#undef FMADD
#undef ADD
#undef LOADU
#undef STOREU
#undef MLOAD
#undef MSTORE
#undef LANEMASK

#define W 4
#define E_T double
#define V_T __m256d
#define ZERO _mm256_setzero_pd
#define BCAST _mm256_broadcast_sd
#define FMADD _mm256_fmadd_pd
#define ADD _mm256_add_pd
#define LOADU _mm256_loadu_pd
#define STOREU _mm256_storeu_pd
#define MLOAD _mm256_maskload_pd
#define MSTORE _mm256_maskstore_pd
#define LANEMASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(n)), _mm256_setr_epi64x(0, 1, 2, 3))
MG_TARGET_AVX2 static inline __attribute__((always_inline)) void ukr_f64(const int rows, MG_UKR_ARGS(double))
{
    UKR_BODY
}
MG_TARGET_AVX2 void mg_ukr_avx2_f64(MG_UKR_ARGS(double)) { MG_UKR_BY_ROWS(ukr_f64); }

#endif
