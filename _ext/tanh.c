/* tanh and its derivative, elementwise over contiguous arrays.
 *
 * SIMD paths: one branch-free computation for every lane.  With a = min(|x|, CLAMP) and
 * e = exp(-2a) = 2^n (1 - 2h), n = round(-2a / ln2), v = a + n ln2/2 (two-part ln2, |v| <= ln2/4) and
 * h = -expm1(-2v)/2 = v + v^2 R(v), R a Chebyshev fit (mpmath, 60 digits; coefficients rounded to the
 * element type), so that 1 - e = (1 - 2^n) + 2^(n+1) h and 1 + e are each one FMA from exact terms:
 *
 * float32 (the fewest operations: the kernel is bound by their throughput, not by the division):
 *     tanh(a) = (1 - e) / (1 + e)
 * float64 (one formula, its denominator's rounding carried into the numerator):
 *     tanh(a) = (2 - D - dd) / (D + dd) ~= (N0 - 2 dd / D) / D
 *     with D = 1 + e rounded, dd = (1 + e) - D exactly (an FMA), N0 = 2 - D exactly (Sterbenz); where n = 0
 *     the numerator is 2h itself.
 *
 * 2^n is built from the bits of the rounding shifter 1.5 * 2^23 (2^52).  |x| is clamped at 10 (float) /
 * 20 (double), where tanh already rounds to exactly 1; the sign is copied back from x, so -0 stays -0; NaN
 * propagates (min keeps it); tiny x returns x.  Measured: at most 1.95 ulp for float32 (every float, both
 * SIMD paths), 1.81 ulp for float64 (4e6 samples against long double).
 *
 * The portable path keeps two branches (cheap in scalar code): an odd polynomial below 0.75, the exp form
 * above; at most 1.13 ulp.  Every path computes each element with the same instructions wherever it sits
 * in the array, so results do not depend on the thread count.
 */
#include <stdint.h>
#include <string.h>

#include "mg_ew.h"

#define SMALL_F32 0.75f /* where the portable code switches formulas */
#define SAT_F32 0x1.205968p+3f /* 9.010914: the smallest float32 whose tanh rounds to 1 */
#define CLAMP_F32 10.0f
#define LOG2E_F32 0x1.715476p+0f
#define LN2HI_F32 0x1.62e400p-1f
#define LN2LO_F32 0x1.7f7d1cp-20f
#define SHIFT_F32 0x1.8p23f
/* portable: odd polynomial below SMALL, exp(s) polynomial above */
static const float P32[] = {-0x1.555556p-2f, 0x1.111102p-3f, -0x1.ba1528p-5f, 0x1.65c1e8p-6f, -0x1.1c94b0p-7f,
                            0x1.9500bap-9f, -0x1.6d2f14p-11f};
static const float E32[] = {0x1p+0f, 0x1p+0f, 0x1p-1f, 0x1.555404p-3f, 0x1.5554acp-5f, 0x1.126fa6p-7f,
                            0x1.6d7532p-10f};
/* SIMD: R(v) = -2 Q(-2v) (exact rescaling) of mg_ew.h's Q */
static const float R32[] = {-2 * Q32_(0), 4 * Q32_(1), -8 * Q32_(2), 16 * Q32_(3), -32 * Q32_(4), 64 * Q32_(5)};

#define SMALL_F64 0.75
#define CLAMP_F64 20.0
#define LOG2E_F64 0x1.71547652b82fep+0
#define LN2HI_F64 0x1.62e42feep-1
#define LN2LO_F64 0x1.a39ef35793c76p-33
#define SHIFT_F64 0x1.8p52
static const double P64[] = {-0x1.5555555555555p-2, 0x1.111111111101fp-3, -0x1.ba1ba1ba03fdep-5,
                             0x1.664f487b7c37ep-6, -0x1.226e3434333f1p-7, 0x1.d6d397c6172ccp-9,
                             -0x1.7d9fdd51d36fap-10, 0x1.353280941795ap-11, -0x1.f351c7b8d9d91p-13,
                             0x1.8b4d9f3447ab6p-14, -0x1.215cdb73c8b35p-15, 0x1.51282042d0b9ap-17,
                             -0x1.b87709c583a0fp-20};
static const double E64[] = {0x1p+0, 0x1p+0, 0x1.0000000000011p-1, 0x1.555555555555ap-3, 0x1.555555554f0cfp-5,
                             0x1.111111110f225p-7, 0x1.6c16c187fbe02p-10, 0x1.a01a01b14378fp-13,
                             0x1.a01991ac8730ap-16, 0x1.71ddf5749d126p-19, 0x1.28b4057f44145p-22,
                             0x1.af631d0059becp-26};
/* R(v) = -2 Q(-2v) */
static const double R64[] = {-2 * Q64_(0), 4 * Q64_(1), -8 * Q64_(2), 16 * Q64_(3), -32 * Q64_(4), 64 * Q64_(5),
                             -128 * Q64_(6), 256 * Q64_(7), -512 * Q64_(8), 1024 * Q64_(9), -2048 * Q64_(10)};
#define NCOEF(c) ((int)(sizeof(c) / sizeof((c)[0])))

/* ---- portable: one element at a time, two branches, no fused multiply-add ---- */

static float tanh1_f32(float x)
{
    const float a = x < 0 ? -x : x;
    float r;
    if (a != a)
        return x;
    if (a < SMALL_F32) {
        const float z = a * a;
        float p = P32[NCOEF(P32) - 1];
        for (int i = NCOEF(P32) - 2; i >= 0; --i)
            p = p * z + P32[i];
        r = a + a * z * p;
    } else {
        const float t = 2 * (a < CLAMP_F32 ? a : CLAMP_F32);
        const int n = (int)(t * LOG2E_F32 + 0.5f);
        const float s = (t - (float)n * LN2HI_F32) - (float)n * LN2LO_F32;
        float p = E32[NCOEF(E32) - 1];
        for (int i = NCOEF(E32) - 2; i >= 0; --i)
            p = p * s + E32[i];
        const uint32_t bits = (uint32_t)(n + 127) << 23;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        r = 1 - 2 / (p * scale + 1);
    }
    return __builtin_copysignf(r, x);
}

static double tanh1_f64(double x)
{
    const double a = x < 0 ? -x : x;
    double r;
    if (a != a)
        return x;
    if (a < SMALL_F64) {
        const double z = a * a;
        double p = P64[NCOEF(P64) - 1];
        for (int i = NCOEF(P64) - 2; i >= 0; --i)
            p = p * z + P64[i];
        r = a + a * z * p;
    } else {
        const double t = 2 * (a < CLAMP_F64 ? a : CLAMP_F64);
        const int n = (int)(t * LOG2E_F64 + 0.5);
        const double s = (t - (double)n * LN2HI_F64) - (double)n * LN2LO_F64;
        double p = E64[NCOEF(E64) - 1];
        for (int i = NCOEF(E64) - 2; i >= 0; --i)
            p = p * s + E64[i];
        const uint64_t bits = (uint64_t)(n + 1023) << 52;
        double scale;
        memcpy(&scale, &bits, sizeof scale);
        r = 1 - 2 / (p * scale + 1);
    }
    return __builtin_copysign(r, x);
}

static void tanh_portable_f32(mg_int n, const float *x, float *y)
{
    for (mg_int i = 0; i < n; ++i)
        y[i] = tanh1_f32(x[i]);
}

static void tanh_portable_f64(mg_int n, const double *x, double *y)
{
    for (mg_int i = 0; i < n; ++i)
        y[i] = tanh1_f64(x[i]);
}

/* (1 - y)(1 + y) rather than 1 - y*y: exact subtraction near |y| = 1, where the gradient is small. */
static void tanh_backward_portable_f32(mg_int n, const float *g, const float *y, float *out)
{
    for (mg_int i = 0; i < n; ++i)
        out[i] = g[i] * ((1 - y[i]) * (1 + y[i]));
}

static void tanh_backward_portable_f64(mg_int n, const double *g, const double *y, double *out)
{
    for (mg_int i = 0; i < n; ++i)
        out[i] = g[i] * ((1 - y[i]) * (1 + y[i]));
}

#if MG_X86
/* ---- the SIMD formulas, written once for both widths and both element types ---- */

/* Every SIMD function below computes tanh of NV vectors x[0..NV-1] into y[] in lockstep: each statement
 * runs for all NV vectors before the next.  The formula is one long dependent chain; issued vector after
 * vector, the out-of-order window holds about two chains, while four side by side keep the ports busy.
 * Each element gets the same operations for any NV, so results do not depend on where it sits. */
#define LANES _Pragma("GCC unroll 4") for (int j = 0; j < NV; ++j)

/* The shared start: clamp, n, h and the scales 2^n, 2^(n+1) from the shifter's bits.
 * R(v): float32 by Estrin's scheme, (R0 + R1 v) + v^2 (R2 + R3 v) + v^4 (R4 + R5 v), half of Horner's
 * dependent chain; float64 by Horner, whose rounding keeps it further from 2 ulp (1.81 against 1.98). */
#define TANH_PROLOGUE(V, SET1, ABS, MIN, FMADD, SUB, MUL, SHL_ADD, R, ESTRIN, CLAMP, LOG2E, LN2HI, LN2LO, SHIFT) \
    const V one = SET1(1);                                                                  \
    V a[4], n[4], nm[4], v[4], v2[4], q[4], h[4], sc[4], sc2[4];                            \
    LANES a[j] = ABS(x[j]);                                                                 \
    LANES nm[j] = FMADD(MIN(SET1(CLAMP), a[j]), SET1(-2 * LOG2E), SET1(SHIFT)); /* NaN stays */ \
    LANES n[j] = SUB(nm[j], SET1(SHIFT));                                                   \
    LANES v[j] = FMADD(n[j], SET1(LN2HI / 2), MIN(SET1(CLAMP), a[j]));                      \
    LANES v[j] = FMADD(n[j], SET1(LN2LO / 2), v[j]);                                        \
    LANES v2[j] = MUL(v[j], v[j]);                                                          \
    if (ESTRIN) {                                                                           \
        /* written for 6 coefficients; "% NCOEF" keeps this branch in bounds where it is not taken */   \
        _Static_assert(NCOEF(R) == 6 || !(ESTRIN), "the Estrin form is written for 6 coefficients"); \
        LANES q[j] = FMADD(FMADD(SET1(R[3 % NCOEF(R)]), v[j], SET1(R[2])), v2[j],           \
                           FMADD(SET1(R[1]), v[j], SET1(R[0])));                            \
        LANES q[j] = FMADD(FMADD(SET1(R[5 % NCOEF(R)]), v[j], SET1(R[4 % NCOEF(R)])),       \
                           MUL(v2[j], v2[j]), q[j]);                                        \
    } else {                                                                                \
        LANES q[j] = SET1(R[NCOEF(R) - 1]);                                                 \
        for (int i_ = NCOEF(R) - 2; i_ >= 0; --i_)                                          \
            LANES q[j] = FMADD(q[j], v[j], SET1(R[i_]));                                    \
    }                                                                                       \
    LANES h[j] = FMADD(v2[j], q[j], v[j]); /* e = 2^n (1 - 2h) */                           \
    LANES SHL_ADD(nm[j], sc[j], sc2[j]);

/* float32: (1 - e) / (1 + e), numerator and denominator each one FMA from exact terms.  From a = 8.66 on,
 * 1 - e rounds to 1 and so does the quotient, while the correctly rounded tanh is 1 - 2^-24 up to 9.0109:
 * below that bound the result is capped at 1 - 2^-24, so that tanh saturates where torch's does. */
#define TANH_TAIL_F32(V, FMADD, FNMADD, SUB, ADD, DIV, CAP_BELOW, COPYSIGN)                  \
    (void)n;                                                                                \
    LANES y[j] = COPYSIGN(CAP_BELOW(DIV(FMADD(sc2[j], h[j], SUB(one, sc[j])),               \
                                        FNMADD(sc2[j], h[j], ADD(one, sc[j]))),             \
                                    a[j], SAT_F32, 0x1.fffffep-1f), x[j]);

/* float64: the one-formula form with the denominator's rounding moved into the numerator. */
#define TANH_TAIL_ONE(V, SET1, FMADD, FNMADD, MUL, SUB, ADD, DIV, RCP, BLEND_N0, COPYSIGN)     \
    V D[4], dd[4];                                                                          \
    LANES D[j] = FNMADD(sc2[j], h[j], ADD(one, sc[j]));                                     \
    LANES dd[j] = FNMADD(sc2[j], h[j], ADD(SUB(one, D[j]), sc[j]));                         \
    LANES y[j] = COPYSIGN(DIV(BLEND_N0(n[j], FMADD(MUL(dd[j], RCP(D[j])), SET1(-2), SUB(SET1(2), D[j])), \
                                       ADD(h[j], h[j])), D[j]), x[j]);

/* The shifter's low mantissa bits are n: shifted into the exponent field, plus a bias, they make 2^n. */

/* ---- AVX-512 ---- */

#define M512_SHL_ADD_PS(nm, sc, sc2)                                                  \
    do {                                                                                    \
        const __m512i e_ = _mm512_slli_epi32(_mm512_castps_si512(nm), 23);                  \
        sc = _mm512_castsi512_ps(_mm512_add_epi32(e_, _mm512_set1_epi32(127 << 23)));       \
        sc2 = _mm512_castsi512_ps(_mm512_add_epi32(e_, _mm512_set1_epi32(128 << 23)));      \
    } while (0)
#define M512_SHL_ADD_PD(nm, sc, sc2)                                                  \
    do {                                                                                    \
        const __m512i e_ = _mm512_slli_epi64(_mm512_castpd_si512(nm), 52);                  \
        sc = _mm512_castsi512_pd(_mm512_add_epi64(e_, _mm512_set1_epi64(1023ll << 52)));    \
        sc2 = _mm512_castsi512_pd(_mm512_add_epi64(e_, _mm512_set1_epi64(1024ll << 52)));   \
    } while (0)
/* min(r, cap) where a < bound, else r */
#define M512_CAP_BELOW_PS(r, a, bound, cap)                                                 \
    _mm512_mask_min_ps(r, _mm512_cmp_ps_mask(a, _mm512_set1_ps(bound), _CMP_LT_OQ), r, _mm512_set1_ps(cap))
/* a where n == 0, else b */
#define M512_BLEND_N0_PD(n, b, a) _mm512_mask_blend_pd(_mm512_cmp_pd_mask(n, _mm512_setzero_pd(), _CMP_EQ_OQ), b, a)
/* r with the sign bit of x: bitwise select (0xE4: c ? a : b) with c = all bits but the sign */
#define M512_COPYSIGN_PS(r, x)                                                              \
    _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(r), _mm512_castps_si512(x), \
                                                  _mm512_set1_epi32(0x7fffffff), 0xE4))
#define M512_COPYSIGN_PD(r, x)                                                              \
    _mm512_castsi512_pd(_mm512_ternarylogic_epi64(_mm512_castpd_si512(r), _mm512_castpd_si512(x), \
                                                  _mm512_set1_epi64(0x7fffffffffffffffll), 0xE4))

MG_TARGET_AVX512 static inline __attribute__((always_inline)) void tanh_v16(const int NV, const __m512 *x,
                                                                        __m512 *y)
{
    TANH_PROLOGUE(__m512, _mm512_set1_ps, _mm512_abs_ps, _mm512_min_ps, _mm512_fmadd_ps, _mm512_sub_ps,
                  _mm512_mul_ps, M512_SHL_ADD_PS, R32, 1, CLAMP_F32, LOG2E_F32, LN2HI_F32, LN2LO_F32, SHIFT_F32)
    TANH_TAIL_F32(__m512, _mm512_fmadd_ps, _mm512_fnmadd_ps, _mm512_sub_ps, _mm512_add_ps, _mm512_div_ps,
                  M512_CAP_BELOW_PS, M512_COPYSIGN_PS)
}

MG_TARGET_AVX512 static inline __attribute__((always_inline)) void tanh_v8d(const int NV, const __m512d *x,
                                                                        __m512d *y)
{
    TANH_PROLOGUE(__m512d, _mm512_set1_pd, _mm512_abs_pd, _mm512_min_pd, _mm512_fmadd_pd, _mm512_sub_pd,
                  _mm512_mul_pd, M512_SHL_ADD_PD, R64, 0, CLAMP_F64, LOG2E_F64, LN2HI_F64, LN2LO_F64, SHIFT_F64)
    TANH_TAIL_ONE(__m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_fnmadd_pd, _mm512_mul_pd, _mm512_sub_pd,
                  _mm512_add_pd, _mm512_div_pd, _mm512_rcp14_pd, M512_BLEND_N0_PD, M512_COPYSIGN_PD)
}


MG_TARGET_AVX512 static void tanh_avx512_f32(mg_int n, const float *x, float *y)
{
    SIMD_LOOP(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, M512_TAIL_LOAD_PS, M512_TAIL_STORE_PS, tanh_v16)
}

MG_TARGET_AVX512 static void tanh_avx512_f64(mg_int n, const double *x, double *y)
{
    SIMD_LOOP(__m512d, 8, _mm512_loadu_pd, _mm512_storeu_pd, M512_TAIL_LOAD_PD, M512_TAIL_STORE_PD, tanh_v8d)
}

MG_TARGET_AVX512 static void tanh_backward_avx512_f32(mg_int n, const float *g, const float *y, float *out)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (mg_int i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 yv = _mm512_maskz_loadu_ps(m, y + i);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, g + i),
                                                        _mm512_fnmadd_ps(yv, yv, one)));
    }
}

MG_TARGET_AVX512 static void tanh_backward_avx512_f64(mg_int n, const double *g, const double *y, double *out)
{
    const __m512d one = _mm512_set1_pd(1.0);
    for (mg_int i = 0; i < n; i += 8) {
        const __mmask8 m = n - i >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - i)) - 1u);
        const __m512d yv = _mm512_maskz_loadu_pd(m, y + i);
        _mm512_mask_storeu_pd(out + i, m, _mm512_mul_pd(_mm512_maskz_loadu_pd(m, g + i),
                                                        _mm512_fnmadd_pd(yv, yv, one)));
    }
}

/* ---- AVX2 + FMA ---- */

#define M256_ABS_PS(v) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)
#define M256_ABS_PD(v) _mm256_andnot_pd(_mm256_set1_pd(-0.0), v)
#define M256_SHL_ADD_PS(nm, sc, sc2)                                                  \
    do {                                                                                    \
        const __m256i e_ = _mm256_slli_epi32(_mm256_castps_si256(nm), 23);                  \
        sc = _mm256_castsi256_ps(_mm256_add_epi32(e_, _mm256_set1_epi32(127 << 23)));       \
        sc2 = _mm256_castsi256_ps(_mm256_add_epi32(e_, _mm256_set1_epi32(128 << 23)));      \
    } while (0)
#define M256_SHL_ADD_PD(nm, sc, sc2)                                                  \
    do {                                                                                    \
        const __m256i e_ = _mm256_slli_epi64(_mm256_castpd_si256(nm), 52);                  \
        sc = _mm256_castsi256_pd(_mm256_add_epi64(e_, _mm256_set1_epi64x(1023ll << 52)));   \
        sc2 = _mm256_castsi256_pd(_mm256_add_epi64(e_, _mm256_set1_epi64x(1024ll << 52)));  \
    } while (0)
#define M256_CAP_BELOW_PS(r, a, bound, cap)                                                 \
    _mm256_blendv_ps(r, _mm256_min_ps(r, _mm256_set1_ps(cap)), _mm256_cmp_ps(a, _mm256_set1_ps(bound), _CMP_LT_OQ))
#define M256_BLEND_N0_PD(n, b, a) _mm256_blendv_pd(b, a, _mm256_cmp_pd(n, _mm256_setzero_pd(), _CMP_EQ_OQ))
/* 1/D to 12 bits (all the correction term needs); AVX2 has no double-precision estimate */
#define M256_RCP_PD(d) _mm256_cvtps_pd(_mm_rcp_ps(_mm256_cvtpd_ps(d)))
#define M256_COPYSIGN_PS(r, x) _mm256_or_ps(r, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)))
#define M256_COPYSIGN_PD(r, x) _mm256_or_pd(r, _mm256_and_pd(x, _mm256_set1_pd(-0.0)))

MG_TARGET_AVX2 static inline __attribute__((always_inline)) void tanh_v8(const int NV, const __m256 *x, __m256 *y)
{
    TANH_PROLOGUE(__m256, _mm256_set1_ps, M256_ABS_PS, _mm256_min_ps, _mm256_fmadd_ps, _mm256_sub_ps,
                  _mm256_mul_ps, M256_SHL_ADD_PS, R32, 1, CLAMP_F32, LOG2E_F32, LN2HI_F32, LN2LO_F32, SHIFT_F32)
    TANH_TAIL_F32(__m256, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_sub_ps, _mm256_add_ps, _mm256_div_ps,
                  M256_CAP_BELOW_PS, M256_COPYSIGN_PS)
}

MG_TARGET_AVX2 static inline __attribute__((always_inline)) void tanh_v4d(const int NV, const __m256d *x,
                                                                      __m256d *y)
{
    TANH_PROLOGUE(__m256d, _mm256_set1_pd, M256_ABS_PD, _mm256_min_pd, _mm256_fmadd_pd, _mm256_sub_pd,
                  _mm256_mul_pd, M256_SHL_ADD_PD, R64, 0, CLAMP_F64, LOG2E_F64, LN2HI_F64, LN2LO_F64, SHIFT_F64)
    TANH_TAIL_ONE(__m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_fnmadd_pd, _mm256_mul_pd, _mm256_sub_pd,
                  _mm256_add_pd, _mm256_div_pd, M256_RCP_PD, M256_BLEND_N0_PD, M256_COPYSIGN_PD)
}


MG_TARGET_AVX2 static void tanh_avx2_f32(mg_int n, const float *x, float *y)
{
    SIMD_LOOP(__m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, tail_load_ps, tail_store_ps, tanh_v8)
}

MG_TARGET_AVX2 static void tanh_avx2_f64(mg_int n, const double *x, double *y)
{
    SIMD_LOOP(__m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, tail_load_pd, tail_store_pd, tanh_v4d)
}

MG_TARGET_AVX2 static void tanh_backward_avx2_f32(mg_int n, const float *g, const float *y, float *out)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    mg_int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 yv = _mm256_loadu_ps(y + i);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_fnmadd_ps(yv, yv, one)));
    }
    for (; i < n; ++i)
        out[i] = g[i] * __builtin_fmaf(-y[i], y[i], 1.0f);
}

MG_TARGET_AVX2 static void tanh_backward_avx2_f64(mg_int n, const double *g, const double *y, double *out)
{
    const __m256d one = _mm256_set1_pd(1.0);
    mg_int i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d yv = _mm256_loadu_pd(y + i);
        _mm256_storeu_pd(out + i, _mm256_mul_pd(_mm256_loadu_pd(g + i), _mm256_fnmadd_pd(yv, yv, one)));
    }
    for (; i < n; ++i)
        out[i] = g[i] * __builtin_fma(-y[i], y[i], 1.0);
}
#endif

/* ---- dispatch ---- */

static const unary_f32 tanh_f32_by_isa[MG_ISA_COUNT] = BY_ISA(tanh, f32);
static const unary_f64 tanh_f64_by_isa[MG_ISA_COUNT] = BY_ISA(tanh, f64);
static const binary_f32 tanh_backward_f32_by_isa[MG_ISA_COUNT] = BY_ISA(tanh_backward, f32);
static const binary_f64 tanh_backward_f64_by_isa[MG_ISA_COUNT] = BY_ISA(tanh_backward, f64);

mg_unary_f32 mg_tanh_serial_f32(int isa)
{
    return tanh_f32_by_isa[isa];
}

mg_unary_f64 mg_tanh_serial_f64(int isa)
{
    return tanh_f64_by_isa[isa];
}

mg_binary_f32 mg_tanh_backward_serial_f32(int isa)
{
    return tanh_backward_f32_by_isa[isa];
}

mg_binary_f64 mg_tanh_backward_serial_f64(int isa)
{
    return tanh_backward_f64_by_isa[isa];
}



void mg_tanh_f32(mg_int n, const float *x, float *y)
{
    RUN(u32, tanh_f32_by_isa, ew_unary_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, n, x, NULL, y);
}

/* float64 tanh takes about 3.5x as long per element as float32: two tasks pay for their hand-off from 8192
 * elements (not at 4096, measured), and a wake-up from 16384. */
void mg_tanh_f64(mg_int n, const double *x, double *y)
{
    RUN(u64, tanh_f64_by_isa, ew_unary_task_f64, MG_SHARE_ELEMS / 2, MG_WAKE_ELEMS / 4, n, x, NULL, y);
}

void mg_tanh_backward_f32(mg_int n, const float *g, const float *y, float *out)
{
    RUN(b32, tanh_backward_f32_by_isa, ew_binary_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, n, g, y, out);
}

void mg_tanh_backward_f64(mg_int n, const double *g, const double *y, double *out)
{
    RUN(b64, tanh_backward_f64_by_isa, ew_binary_task_f64, MG_SHARE_ELEMS, MG_WAKE_ELEMS, n, g, y, out);
}

void mg_tanh_rows_f32(mg_int rows, mg_int cols, const float *x, mg_int xs, float *y, mg_int ys)
{
    RUN_ROWS(u32, tanh_f32_by_isa, ew_unary_rows_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, rows, cols, x, xs, NULL,
             0, y, ys);
}

void mg_tanh_rows_f64(mg_int rows, mg_int cols, const double *x, mg_int xs, double *y, mg_int ys)
{
    RUN_ROWS(u64, tanh_f64_by_isa, ew_unary_rows_task_f64, MG_SHARE_ELEMS / 2, MG_WAKE_ELEMS / 4, rows, cols, x, xs,
             NULL, 0, y, ys);
}

void mg_tanh_backward_rows_f32(mg_int rows, mg_int cols, const float *g, mg_int gs, const float *y, mg_int ys,
                               float *out, mg_int os)
{
    RUN_ROWS(b32, tanh_backward_f32_by_isa, ew_binary_rows_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, rows, cols, g,
             gs, y, ys, out, os);
}

void mg_tanh_backward_rows_f64(mg_int rows, mg_int cols, const double *g, mg_int gs, const double *y, mg_int ys,
                               double *out, mg_int os)
{
    RUN_ROWS(b64, tanh_backward_f64_by_isa, ew_binary_rows_task_f64, MG_SHARE_ELEMS, MG_WAKE_ELEMS, rows, cols, g,
             gs, y, ys, out, os);
}
