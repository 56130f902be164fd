/* AVX-512 GEMM micro-kernels: 6 x 64 (float32) and 6 x 32 (float64) tiles of C in 24 zmm accumulators.
 * The accumulators are named variables rather than an array so that gcc keeps them in registers. */
#include "mg_internal.h"

#if MG_X86
#include <immintrin.h>

/* Lane mask for columns [off, off + lanes) of a tile whose first nr columns are live. */
#define MG_LANES(nr, off, lanes) ((nr) >= (off) + (lanes) ? (lanes) : (nr) > (off) ? (nr) - (off) : 0)

#define DECL_ROW(V, r) V c##r##0 = ZERO(), c##r##1 = ZERO(), c##r##2 = ZERO(), c##r##3 = ZERO()
#define FMA_ROW(r)                                                                          \
    do {                                                                                    \
        if ((r) >= rows)                                                                    \
            break;                                                                          \
        const V_T av = BCAST(a[(r) * ars + ka]);                                            \
        c##r##0 = FMADD(av, b0, c##r##0);                                                   \
        c##r##1 = FMADD(av, b1, c##r##1);                                                   \
        c##r##2 = FMADD(av, b2, c##r##2);                                                   \
        c##r##3 = FMADD(av, b3, c##r##3);                                                   \
    } while (0)
/* Full vectors are stored unmasked (cheaper on AMD cores); only an N tail uses lane masks.  q: the same
 * vector of the addend (ci), or NULL. */
#define STORE1(p, q, v, m)                                                                  \
    do {                                                                                    \
        if (full)                                                                           \
            STOREU(p, (q) ? ADD(LOADU(q), v) : overwrite ? (v) : ADD(LOADU(p), v));         \
        else                                                                                \
            MSTORE(p, m, (q) ? ADD(MLOAD(m, q), v) : overwrite ? (v) : ADD(MLOAD(m, p), v)); \
    } while (0)
#define STORE_ROW(r)                                                                        \
    do {                                                                                    \
        if ((r) < rows && (r) < mr) {                                                       \
            E_T *cr = c + (r) * rsc;                                                        \
            const E_T *qr = ci ? ci + (r) * rsi : NULL;                                     \
            STORE1(cr, qr, c##r##0, m0);                                                    \
            STORE1(cr + W, qr ? qr + W : NULL, c##r##1, m1);                                \
            STORE1(cr + 2 * W, qr ? qr + 2 * W : NULL, c##r##2, m2);                        \
            STORE1(cr + 3 * W, qr ? qr + 3 * W : NULL, c##r##3, m3);                        \
        }                                                                                   \
    } while (0)
#define SPILL_ROW(r)                                                                        \
    do {                                                                                    \
        STOREA(tile + (r) * 4 * W, c##r##0);                                                \
        STOREA(tile + (r) * 4 * W + W, c##r##1);                                            \
        STOREA(tile + (r) * 4 * W + 2 * W, c##r##2);                                        \
        STOREA(tile + (r) * 4 * W + 3 * W, c##r##3);                                        \
    } while (0)

/* The C tile (and the addend's) is prefetched before the k loop so that its update after the loop does not
 * wait on memory. */
#define PREFETCH_ROW(p_)                                                                    \
    do {                                                                                    \
        _mm_prefetch((const char *)(p_), _MM_HINT_T0);                                      \
        _mm_prefetch((const char *)(p_) + 64, _MM_HINT_T0);                                 \
        _mm_prefetch((const char *)(p_) + 128, _MM_HINT_T0);                                \
        _mm_prefetch((const char *)(p_) + 192, _MM_HINT_T0);                                \
    } while (0)
#define PREFETCH_C                                                                          \
    if (csc == 1)                                                                           \
        for (mg_int r_ = 0; r_ < mr; ++r_) {                                                \
            PREFETCH_ROW(c + r_ * rsc);                                                     \
            if (ci)                                                                         \
                PREFETCH_ROW(ci + r_ * rsi);                                                \
        }
/* The body shared by both element types: W lanes per vector, tile 6 x 4W. */
#define UKR_BODY                                                                            \
    DECL_ROW(V_T, 0); DECL_ROW(V_T, 1); DECL_ROW(V_T, 2);                                   \
    DECL_ROW(V_T, 3); DECL_ROW(V_T, 4); DECL_ROW(V_T, 5);                                   \
    /* Lanes past nr are never loaded (an unpacked B ends there) nor stored. */             \
    const M_T m0 = MASK(MG_LANES(nr, 0, W)), m1 = MASK(MG_LANES(nr, W, W));                 \
    const M_T m2 = MASK(MG_LANES(nr, 2 * W, W)), m3 = MASK(MG_LANES(nr, 3 * W, W));         \
    PREFETCH_C                                                                              \
    if (nr == 4 * W) {                                                                      \
        for (mg_int k = 0, ka = 0, kb = 0; k < kc; ++k, ka += aks, kb += bks) {             \
            const V_T b0 = LOADU(b + kb), b1 = LOADU(b + kb + W);                           \
            const V_T b2 = LOADU(b + kb + 2 * W), b3 = LOADU(b + kb + 3 * W);               \
            FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);         \
        }                                                                                   \
    } else {                                                                                \
        for (mg_int k = 0, ka = 0, kb = 0; k < kc; ++k, ka += aks, kb += bks) {             \
            const V_T b0 = MLOAD(m0, b + kb), b1 = MLOAD(m1, b + kb + W);                   \
            const V_T b2 = MLOAD(m2, b + kb + 2 * W), b3 = MLOAD(m3, b + kb + 3 * W);       \
            FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);         \
        }                                                                                   \
    }                                                                                       \
    if (csc == 1) {                                                                         \
        const int full = nr == 4 * W;                                                       \
        STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3); STORE_ROW(4); STORE_ROW(5); \
    } else {                                                                                \
        /* Strided columns: spill the tile, then update C one element at a time. */         \
        E_T tile[6 * 4 * W] __attribute__((aligned(64)));                                   \
        SPILL_ROW(0); SPILL_ROW(1); SPILL_ROW(2); SPILL_ROW(3); SPILL_ROW(4); SPILL_ROW(5); \
        for (mg_int i = 0; i < mr; ++i)                                                     \
            for (mg_int j = 0; j < nr; ++j) {                                               \
                E_T *p = c + i * rsc + j * csc;                                             \
                const E_T v_ = tile[i * 4 * W + j];                                         \
                *p = ci ? ci[i * rsi + j] + v_ : overwrite ? v_ : *p + v_;                  \
            }                                                                               \
    }

#define W 16
#define E_T float
#define V_T __m512
#define M_T __mmask16
#define ZERO _mm512_setzero_ps
#define BCAST _mm512_set1_ps
#define FMADD _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define STOREA _mm512_store_ps
#define MLOAD _mm512_maskz_loadu_ps
#define MSTORE _mm512_mask_storeu_ps
#define LOADU _mm512_loadu_ps
#define STOREU _mm512_storeu_ps
#define MASK(n) ((__mmask16)((1u << (n)) - 1u))
MG_TARGET_AVX512 static inline __attribute__((always_inline))
void ukr_f32(const int rows, MG_UKR_ARGS(float))
{
    UKR_BODY
}
MG_TARGET_AVX512 void mg_ukr_avx512_f32(MG_UKR_ARGS(float)) { MG_UKR_BY_ROWS(ukr_f32); }
#undef W
#undef E_T
#undef V_T
#undef M_T
#undef ZERO
#undef BCAST
#undef FMADD
#undef ADD
#undef STOREA
#undef MLOAD
#undef MSTORE
#undef LOADU
#undef STOREU
#undef MASK

#define W 8
#define E_T double
#define V_T __m512d
#define M_T __mmask8
#define ZERO _mm512_setzero_pd
#define BCAST _mm512_set1_pd
#define FMADD _mm512_fmadd_pd
#define ADD _mm512_add_pd
#define STOREA _mm512_store_pd
#define MLOAD _mm512_maskz_loadu_pd
#define MSTORE _mm512_mask_storeu_pd
#define LOADU _mm512_loadu_pd
#define STOREU _mm512_storeu_pd
#define MASK(n) ((__mmask8)((1u << (n)) - 1u))
MG_TARGET_AVX512 static inline __attribute__((always_inline))
void ukr_f64(const int rows, MG_UKR_ARGS(double))
{
    UKR_BODY
}
MG_TARGET_AVX512 void mg_ukr_avx512_f64(MG_UKR_ARGS(double)) { MG_UKR_BY_ROWS(ukr_f64); }

#endif
