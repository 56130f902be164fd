/* The logistic sigmoid 1 / (1 + exp(-x)) and its derivative, elementwise over contiguous arrays.
 *
 * SIMD paths: one branch-free computation for every lane.  With a = min(|x|, CLAMP) and
 * E = exp(-a) = 2^n (1 + h), n = round(-a / ln2), v = a + n ln2 (two-part ln2, |v| <= ln2/2) and
 * h = expm1(-v) = -v + v^2 Q(-v) (mg_ew.h's fit, its odd coefficients negated):
 *
 *     sigmoid(x) = 1 / (1 + E)  for x >= 0,     E / (1 + E)  for x < 0.
 *
 * Both the numerator and the denominator are carried as a rounded value plus its exact rounding error
 * (D + dd = 1 + E, N + Nl = E, each error from one FMA), and the quotient q = N / D is corrected by
 * (Nl - q dd) / D with a 12-bit reciprocal of D.  What remains is the division's rounding and h's error
 * scaled down by the derivative: at most 1.4 ulp measured (every 193rd float32 on both paths, 4e6 float64
 * samples against long double).
 *
 * Subnormal results: the numerator is computed scaled by S = 2^64 (float) / 2^128 (double), so that 2^n S and
 * the numerator's rounding error stay normal for every n, and the quotient is scaled back once, so that
 * E / (1 + E) rounds into the subnormal range once -- by the integer shift that rounding is where the
 * result is subnormal (AVX-512; a floating-point result that underflows costs an Intel core a microcode
 * assist, which made a saturated LSTM gate's sigmoid 26 times slower), else by a multiplication.
 * |x| is clamped at 104 (float) / 746 (double), where the result rounds to exactly 0 or 1 (which it does
 * from 17.33 / 37.43 on the positive side, as the correctly rounded sigmoid).  NaN propagates (min keeps it);
 * -0 gives 0.5.
 *
 * The portable path evaluates the same quotients with the C library's exp: float32 in double precision,
 * float64 with the rounding error of 1 + E (Fast2Sum, exact since E <= 1) and the quotient's exact
 * remainder (Dekker's product) folded into one correction: 1.4 ulp measured.
 *
 * The derivative is (g * y) * (1 - y), the rounding order of numpy's g * y * (1 - y), on every path.
 * Every path computes each element with the same instructions wherever it sits in the array, so results do
 * not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mg_ew.h"

#define CLAMP_F32 104.0f
#define LOG2E_F32 0x1.715476p+0f
#define LN2HI_F32 0x1.62e400p-1f
#define LN2LO_F32 0x1.7f7d1cp-20f
#define SHIFT_F32 0x1.8p23f
#define CLAMP_F64 746.0
/* 2^n is clamped at 2^-120 (2^-1000): from a > 83 (693) on it only adds below 1's last bit to 1 + E and to
 * the correction term, so the result's bits are the same, and no lane's 2^n underflows.  (A result that
 * underflows costs a microcode assist on Intel cores, ~100 cycles a lane.) */
#define SCS_MIN_F32 0x1p-56f
#define SCS_MIN_F64 0x1p-872
#define LOG2E_F64 0x1.71547652b82fep+0
#define LN2HI_F64 0x1.62e42feep-1
#define LN2LO_F64 0x1.a39ef35793c76p-33
#define SHIFT_F64 0x1.8p52
/* Q(-v) with v: the odd coefficients of Q negated */
#define QN32_(k) ((k) % 2 ? -Q32_(k) : Q32_(k))
#define QN64_(k) ((k) % 2 ? -Q64_(k) : Q64_(k))
static const float QN32[] = {QN32_(0), QN32_(1), QN32_(2), QN32_(3), QN32_(4), QN32_(5)};
static const double QN64[] = {QN64_(0), QN64_(1), QN64_(2), QN64_(3), QN64_(4), QN64_(5), QN64_(6), QN64_(7),
                              QN64_(8), QN64_(9), QN64_(10)};
_Static_assert(sizeof(QN32) / sizeof(QN32[0]) == Q32_COUNT, "QN32 lists every coefficient of Q32");
_Static_assert(sizeof(QN64) / sizeof(QN64[0]) == Q64_COUNT, "QN64 lists every coefficient of Q64");
#define NCOEF(c) ((int)(sizeof(c) / sizeof((c)[0])))

/* ---- portable ---- */

static float sigmoid1_f32(float x)
{
    const double e = exp(-fabs((double)x));
    return (float)(x < 0 ? e / (1 + e) : 1 / (1 + e));
}

/* p's rounding error a*b - p, p = fl(a*b), exactly (Dekker's product without FMA; |a|, |b| <= 2). */
static double product_error(double a, double b, double p)
{
    const double ca = 0x1.0000002p+27 * a, cb = 0x1.0000002p+27 * b;
    const double ah = ca - (ca - a), al = a - ah, bh = cb - (cb - b), bl = b - bh;
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

/* num / (d + dd) with num = E (x < 0) or 1, d + dd = 1 + E exactly: q = num / d corrected by its exact
 * remainder.  From x < -37 on, E < 2^-53 and E / (1 + E) rounds as E itself (subnormal results too). */
static double sigmoid1_f64(double x)
{
    const double e = exp(-fabs(x));
    if (x < -37.0)
        return e;
    const double d = 1 + e, dd = (1 - d) + e, num = x < 0 ? e : 1;
    const double q = num / d, p = q * d;
    const double r = (num - p) - product_error(q, d, p);
    return q + (r - q * dd) / d;
}

static void sigmoid_portable_f32(mg_int n, const float *x, float *y)
{
    for (mg_int i = 0; i < n; ++i)
        y[i] = sigmoid1_f32(x[i]);
}

static void sigmoid_portable_f64(mg_int n, const double *x, double *y)
{
    for (mg_int i = 0; i < n; ++i)
        y[i] = sigmoid1_f64(x[i]);
}

/* (g * y) * (1 - y): multiplications and a subtraction only, so no path can fuse them differently; the
 * SIMD paths are this loop compiled for their instruction sets. */
#define SIGMOID_BACKWARD(T)                                                                 \
    for (mg_int i = 0; i < n; ++i)                                                          \
        out[i] = (g[i] * y[i]) * ((T)1 - y[i]);

static void sigmoid_backward_portable_f32(mg_int n, const float *g, const float *y, float *out)
{
    SIGMOID_BACKWARD(float)
}

static void sigmoid_backward_portable_f64(mg_int n, const double *g, const double *y, double *out)
{
    SIGMOID_BACKWARD(double)
}

#if MG_X86
/* NV vectors x[0..NV-1] into y[] in lockstep, as tanh.c's: each statement runs for all NV vectors first. */
#define LANES _Pragma("GCC unroll 4") for (int j = 0; j < NV; ++j)

#define SIGMOID_BODY(V, SET1, ABS, MIN, MAX, FMADD, FNMADD, FMSUB, SUB, ADD, MUL, DIV, RCP, SCALE, NEG_BLEND,    \
                     UNSCALE, Q, CLAMP, SCALE_UP, SCS_MIN, LOG2E, LN2HI, LN2LO, SHIFT)                                      \
    const V one = SET1(1);                                                                                      \
    V a[4], nm[4], n[4], v[4], p[4], h[4], scs[4], sc[4], D[4], dd[4], N[4], Nl[4], num[4], numl[4], q[4];    \
    LANES a[j] = MIN(SET1(CLAMP), ABS(x[j])); /* NaN stays */                                                  \
    LANES nm[j] = FMADD(a[j], SET1(-LOG2E), SET1(SHIFT));                                                      \
    LANES n[j] = SUB(nm[j], SET1(SHIFT));                                                                      \
    LANES v[j] = FMADD(n[j], SET1(LN2HI), a[j]);                                                               \
    LANES v[j] = FMADD(n[j], SET1(LN2LO), v[j]);                                                               \
    LANES p[j] = SET1(Q[NCOEF(Q) - 1]);                                                                        \
    for (int i_ = NCOEF(Q) - 2; i_ >= 0; --i_)                                                                 \
        LANES p[j] = FMADD(p[j], v[j], SET1(Q[i_]));                                                           \
    LANES h[j] = FMSUB(MUL(v[j], v[j]), p[j], v[j]); /* E = 2^n (1 + h) */                                    \
    LANES SCALE(nm[j], scs[j]);                      /* 2^n S */                                               \
    LANES sc[j] = MUL(MAX(scs[j], SET1(SCS_MIN)), SET1(1 / SCALE_UP)); /* 2^n, kept normal (SCS_MIN) */        \
    LANES D[j] = FMADD(sc[j], h[j], ADD(one, sc[j]));                                                          \
    LANES dd[j] = FMADD(sc[j], h[j], ADD(SUB(one, D[j]), sc[j]));                                              \
    LANES N[j] = FMADD(scs[j], h[j], scs[j]);                                                                  \
    LANES Nl[j] = FMADD(scs[j], h[j], SUB(scs[j], N[j]));                                                      \
    LANES NEG_BLEND(x[j], N[j], Nl[j], num[j], numl[j]);                                                       \
    LANES q[j] = DIV(num[j], D[j]);                                                                            \
    LANES y[j] = UNSCALE(FMADD(FNMADD(q[j], dd[j], numl[j]), RCP(D[j]), q[j]));

/* ---- AVX-512 ---- */

#define M512_SCALE_PS(nm, s)                                                                \
    s = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(_mm512_castps_si512(nm), 23), \
                                             _mm512_set1_epi32((127 + 64) << 23)))
#define M512_SCALE_PD(nm, s)                                                                \
    s = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_slli_epi64(_mm512_castpd_si512(nm), 52), \
                                             _mm512_set1_epi64((1023ll + 128) << 52)))
/* x < 0: E / (1 + E), numerator (N, Nl); else 1 / (1 + E), numerator (S, 0) */
#define M512_NEG_BLEND_PS(x, N, Nl, num, numl)                                              \
    do {                                                                                    \
        const __mmask16 m_ = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);       \
        num = _mm512_mask_blend_ps(m_, _mm512_set1_ps(0x1p64f), N);                         \
        numl = _mm512_maskz_mov_ps(m_, Nl);                                                 \
    } while (0)
#define M512_NEG_BLEND_PD(x, N, Nl, num, numl)                                              \
    do {                                                                                    \
        const __mmask8 m_ = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_LT_OQ);        \
        num = _mm512_mask_blend_pd(m_, _mm512_set1_pd(0x1p128), N);                         \
        numl = _mm512_maskz_mov_pd(m_, Nl);                                                 \
    } while (0)

/* y = ys / S, rounded once (to nearest even), without a floating-point result that underflows: where y is
 * subnormal (ys < 2^-62 float, 2^-894 double) its bits are ys's significand shifted right by 65 (129) minus
 * ys's biased exponent, rounded to nearest even in integer arithmetic; elsewhere the multiplication (on 1 in
 * the other lanes). */
MG_TARGET_AVX512 static inline __attribute__((always_inline)) __m512 unscale_v16(const __m512 ys)
{
    const __mmask16 tiny = _mm512_cmp_ps_mask(ys, _mm512_set1_ps(0x1p-62f), _CMP_LT_OQ);
    const __m512 big = _mm512_mul_ps(_mm512_mask_blend_ps(tiny, ys, _mm512_set1_ps(1.0f)), _mm512_set1_ps(0x1p-64f));
    if (!tiny)
        return big;
    const __m512i b = _mm512_castps_si512(ys), one = _mm512_set1_epi32(1);
    const __m512i m = _mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi32(0x7FFFFF)), _mm512_set1_epi32(0x800000));
    const __m512i sh = _mm512_min_epu32(_mm512_sub_epi32(_mm512_set1_epi32(65), _mm512_srli_epi32(b, 23)),
                                        _mm512_set1_epi32(26));
    const __m512i q = _mm512_srlv_epi32(m, sh), rem = _mm512_sub_epi32(m, _mm512_sllv_epi32(q, sh));
    const __m512i half = _mm512_sllv_epi32(one, _mm512_sub_epi32(sh, one));
    const __mmask16 up = _mm512_cmpgt_epu32_mask(rem, half) |
                         (_mm512_cmpeq_epi32_mask(rem, half) & _mm512_test_epi32_mask(q, one));
    const __m512i r = _mm512_mask_add_epi32(q, up, q, one);
    return _mm512_mask_blend_ps(tiny, big, _mm512_castsi512_ps(r));
}

MG_TARGET_AVX512 static inline __attribute__((always_inline)) __m512d unscale_v8d(const __m512d ys)
{
    const __mmask8 tiny = _mm512_cmp_pd_mask(ys, _mm512_set1_pd(0x1p-894), _CMP_LT_OQ);
    const __m512d big = _mm512_mul_pd(_mm512_mask_blend_pd(tiny, ys, _mm512_set1_pd(1.0)), _mm512_set1_pd(0x1p-128));
    if (!tiny)
        return big;
    const __m512i b = _mm512_castpd_si512(ys), one = _mm512_set1_epi64(1);
    const __m512i m = _mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi64(0xFFFFFFFFFFFFFll)),
                                      _mm512_set1_epi64(1ll << 52));
    const __m512i sh = _mm512_min_epu64(_mm512_sub_epi64(_mm512_set1_epi64(129), _mm512_srli_epi64(b, 52)),
                                        _mm512_set1_epi64(55));
    const __m512i q = _mm512_srlv_epi64(m, sh), rem = _mm512_sub_epi64(m, _mm512_sllv_epi64(q, sh));
    const __m512i half = _mm512_sllv_epi64(one, _mm512_sub_epi64(sh, one));
    const __mmask8 up = _mm512_cmpgt_epu64_mask(rem, half) |
                        (_mm512_cmpeq_epi64_mask(rem, half) & _mm512_test_epi64_mask(q, one));
    const __m512i r = _mm512_mask_add_epi64(q, up, q, one);
    return _mm512_mask_blend_pd(tiny, big, _mm512_castsi512_pd(r));
}

MG_TARGET_AVX512 static inline __attribute__((always_inline)) void sigmoid_v16(const int NV, const __m512 *x,
                                                                           __m512 *y)
{
    SIGMOID_BODY(__m512, _mm512_set1_ps, _mm512_abs_ps, _mm512_min_ps, _mm512_max_ps, _mm512_fmadd_ps,
                 _mm512_fnmadd_ps, _mm512_fmsub_ps, _mm512_sub_ps, _mm512_add_ps, _mm512_mul_ps, _mm512_div_ps,
                 _mm512_rcp14_ps, M512_SCALE_PS, M512_NEG_BLEND_PS, unscale_v16, QN32, CLAMP_F32, 0x1p64f, SCS_MIN_F32,
                 LOG2E_F32, LN2HI_F32, LN2LO_F32, SHIFT_F32)
}

MG_TARGET_AVX512 static inline __attribute__((always_inline)) void sigmoid_v8d(const int NV, const __m512d *x,
                                                                           __m512d *y)
{
    SIGMOID_BODY(__m512d, _mm512_set1_pd, _mm512_abs_pd, _mm512_min_pd, _mm512_max_pd, _mm512_fmadd_pd,
                 _mm512_fnmadd_pd, _mm512_fmsub_pd, _mm512_sub_pd, _mm512_add_pd, _mm512_mul_pd, _mm512_div_pd,
                 _mm512_rcp14_pd, M512_SCALE_PD, M512_NEG_BLEND_PD, unscale_v8d, QN64, CLAMP_F64, 0x1p128, SCS_MIN_F64,
                 LOG2E_F64, LN2HI_F64, LN2LO_F64, SHIFT_F64)
}

MG_TARGET_AVX512 static void sigmoid_avx512_f32(mg_int n, const float *x, float *y)
{
    SIMD_LOOP(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, M512_TAIL_LOAD_PS, M512_TAIL_STORE_PS, sigmoid_v16)
}

MG_TARGET_AVX512 static void sigmoid_avx512_f64(mg_int n, const double *x, double *y)
{
    SIMD_LOOP(__m512d, 8, _mm512_loadu_pd, _mm512_storeu_pd, M512_TAIL_LOAD_PD, M512_TAIL_STORE_PD, sigmoid_v8d)
}

MG_TARGET_AVX512 static void sigmoid_backward_avx512_f32(mg_int n, const float *g, const float *y, float *out)
{
    SIGMOID_BACKWARD(float)
}

MG_TARGET_AVX512 static void sigmoid_backward_avx512_f64(mg_int n, const double *g, const double *y, double *out)
{
    SIGMOID_BACKWARD(double)
}

/* ---- AVX2 + FMA ---- */

#define M256_ABS_PS(v) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)
#define M256_ABS_PD(v) _mm256_andnot_pd(_mm256_set1_pd(-0.0), v)
#define M256_SCALE_PS(nm, s)                                                                \
    s = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(nm), 23), \
                                             _mm256_set1_epi32((127 + 64) << 23)))
#define M256_SCALE_PD(nm, s)                                                                \
    s = _mm256_castsi256_pd(_mm256_add_epi64(_mm256_slli_epi64(_mm256_castpd_si256(nm), 52), \
                                             _mm256_set1_epi64x((1023ll + 128) << 52)))
#define M256_NEG_BLEND_PS(x, N, Nl, num, numl)                                              \
    do {                                                                                    \
        const __m256 m_ = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);               \
        num = _mm256_blendv_ps(_mm256_set1_ps(0x1p64f), N, m_);                             \
        numl = _mm256_and_ps(m_, Nl);                                                       \
    } while (0)
#define M256_NEG_BLEND_PD(x, N, Nl, num, numl)                                              \
    do {                                                                                    \
        const __m256d m_ = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ);              \
        num = _mm256_blendv_pd(_mm256_set1_pd(0x1p128), N, m_);                             \
        numl = _mm256_and_pd(m_, Nl);                                                       \
    } while (0)
/* AVX2 multiplies (one rounding; an underflowing lane takes the assist) */
#define M256_UNSCALE_PS(ys) _mm256_mul_ps(ys, _mm256_set1_ps(0x1p-64f))
#define M256_UNSCALE_PD(ys) _mm256_mul_pd(ys, _mm256_set1_pd(0x1p-128))
/* 1/D to 12 bits (all the correction term needs); AVX2 has no double-precision estimate */
#define M256_RCP_PD(d) _mm256_cvtps_pd(_mm_rcp_ps(_mm256_cvtpd_ps(d)))

MG_TARGET_AVX2 static inline __attribute__((always_inline)) void sigmoid_v8(const int NV, const __m256 *x,
                                                                        __m256 *y)
{
    SIGMOID_BODY(__m256, _mm256_set1_ps, M256_ABS_PS, _mm256_min_ps, _mm256_max_ps, _mm256_fmadd_ps,
                 _mm256_fnmadd_ps, _mm256_fmsub_ps, _mm256_sub_ps, _mm256_add_ps, _mm256_mul_ps, _mm256_div_ps,
                 _mm256_rcp_ps, M256_SCALE_PS, M256_NEG_BLEND_PS, M256_UNSCALE_PS, QN32, CLAMP_F32, 0x1p64f, SCS_MIN_F32,
                 LOG2E_F32, LN2HI_F32, LN2LO_F32, SHIFT_F32)
}

MG_TARGET_AVX2 static inline __attribute__((always_inline)) void sigmoid_v4d(const int NV, const __m256d *x,
                                                                         __m256d *y)
{
    SIGMOID_BODY(__m256d, _mm256_set1_pd, M256_ABS_PD, _mm256_min_pd, _mm256_max_pd, _mm256_fmadd_pd,
                 _mm256_fnmadd_pd, _mm256_fmsub_pd, _mm256_sub_pd, _mm256_add_pd, _mm256_mul_pd, _mm256_div_pd,
                 M256_RCP_PD, M256_SCALE_PD, M256_NEG_BLEND_PD, M256_UNSCALE_PD, QN64, CLAMP_F64, 0x1p128, SCS_MIN_F64,
                 LOG2E_F64, LN2HI_F64, LN2LO_F64, SHIFT_F64)
}

MG_TARGET_AVX2 static void sigmoid_avx2_f32(mg_int n, const float *x, float *y)
{
    SIMD_LOOP(__m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, tail_load_ps, tail_store_ps, sigmoid_v8)
}

MG_TARGET_AVX2 static void sigmoid_avx2_f64(mg_int n, const double *x, double *y)
{
    SIMD_LOOP(__m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, tail_load_pd, tail_store_pd, sigmoid_v4d)
}

MG_TARGET_AVX2 static void sigmoid_backward_avx2_f32(mg_int n, const float *g, const float *y, float *out)
{
    SIGMOID_BACKWARD(float)
}

MG_TARGET_AVX2 static void sigmoid_backward_avx2_f64(mg_int n, const double *g, const double *y, double *out)
{
    SIGMOID_BACKWARD(double)
}
#endif

/* ---- dispatch ---- */

static const unary_f32 sigmoid_f32_by_isa[MG_ISA_COUNT] = BY_ISA(sigmoid, f32);
static const unary_f64 sigmoid_f64_by_isa[MG_ISA_COUNT] = BY_ISA(sigmoid, f64);
static const binary_f32 sigmoid_backward_f32_by_isa[MG_ISA_COUNT] = BY_ISA(sigmoid_backward, f32);
static const binary_f64 sigmoid_backward_f64_by_isa[MG_ISA_COUNT] = BY_ISA(sigmoid_backward, f64);

mg_unary_f32 mg_sigmoid_serial_f32(int isa)
{
    return sigmoid_f32_by_isa[isa];
}

mg_unary_f64 mg_sigmoid_serial_f64(int isa)
{
    return sigmoid_f64_by_isa[isa];
}

mg_binary_f32 mg_sigmoid_backward_serial_f32(int isa)
{
    return sigmoid_backward_f32_by_isa[isa];
}

mg_binary_f64 mg_sigmoid_backward_serial_f64(int isa)
{
    return sigmoid_backward_f64_by_isa[isa];
}

/* The float32 forward costs about as much per element as tanh's, the float64 one about as much as float64
 * tanh: the same thresholds.  The backward is three operations per element, like tanh's. */
void mg_sigmoid_f32(mg_int n, const float *x, float *y)
{
    RUN(u32, sigmoid_f32_by_isa, ew_unary_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, n, x, NULL, y);
}

void mg_sigmoid_f64(mg_int n, const double *x, double *y)
{
    RUN(u64, sigmoid_f64_by_isa, ew_unary_task_f64, MG_SHARE_ELEMS / 2, MG_WAKE_ELEMS / 4, n, x, NULL, y);
}

void mg_sigmoid_backward_f32(mg_int n, const float *g, const float *y, float *out)
{
    RUN(b32, sigmoid_backward_f32_by_isa, ew_binary_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, n, g, y, out);
}

void mg_sigmoid_backward_f64(mg_int n, const double *g, const double *y, double *out)
{
    RUN(b64, sigmoid_backward_f64_by_isa, ew_binary_task_f64, MG_SHARE_ELEMS, MG_WAKE_ELEMS, n, g, y, out);
}

void mg_sigmoid_rows_f32(mg_int rows, mg_int cols, const float *x, mg_int xs, float *y, mg_int ys)
{
    RUN_ROWS(u32, sigmoid_f32_by_isa, ew_unary_rows_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, rows, cols, x, xs,
             NULL, 0, y, ys);
}

void mg_sigmoid_rows_f64(mg_int rows, mg_int cols, const double *x, mg_int xs, double *y, mg_int ys)
{
    RUN_ROWS(u64, sigmoid_f64_by_isa, ew_unary_rows_task_f64, MG_SHARE_ELEMS / 2, MG_WAKE_ELEMS / 4, rows, cols, x,
             xs, NULL, 0, y, ys);
}

void mg_sigmoid_backward_rows_f32(mg_int rows, mg_int cols, const float *g, mg_int gs, const float *y, mg_int ys,
                                  float *out, mg_int os)
{
    RUN_ROWS(b32, sigmoid_backward_f32_by_isa, ew_binary_rows_task_f32, MG_SHARE_ELEMS, MG_WAKE_ELEMS, rows, cols,
             g, gs, y, ys, out, os);
}

void mg_sigmoid_backward_rows_f64(mg_int rows, mg_int cols, const double *g, mg_int gs, const double *y,
                                  mg_int ys, double *out, mg_int os)
{
    RUN_ROWS(b64, sigmoid_backward_f64_by_isa, ew_binary_rows_task_f64, MG_SHARE_ELEMS, MG_WAKE_ELEMS, rows, cols,
             g, gs, y, ys, out, os);
}
