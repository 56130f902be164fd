/* Declarations shared by the kernel sources; not part of the C API in kernels.h. */
#ifndef MINIGRAD_INTERNAL_H
#define MINIGRAD_INTERNAL_H

#include "kernels.h"

/* The SIMD paths need GCC/Clang function multiversioning on x86; elsewhere only the portable path exists. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define MG_X86 1
#define MG_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define MG_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define MG_X86 0
#endif

/* OpenMP pragmas through a macro, so that builds without OpenMP compile them away silently. */
#ifdef _OPENMP
#include <omp.h>
#define MG_OMP(directive) _Pragma(#directive)
#define MG_THREAD_ID() omp_get_thread_num()
#else
#define MG_OMP(directive)
#define MG_THREAD_ID() 0
#endif

/* Path and thread count the kernels use; set only through kernels.h. */
int mg_active_isa(void);
int mg_active_threads(void);

/* Micro-kernels: C[0:mr, 0:nr] (=|+=) A[0:mr, 0:kc] @ B[0:kc, 0:nr], with A(i, k) at a[i*ars + k*aks] and
 * B(k, j) at b[k*bks + j].  A packed panel has ars = 1, aks = MR and a packed B panel bks = NR, zero-padded
 * to MR rows / NR columns; unpacked operands are read in place (only the AVX-512 kernels take an unpacked B,
 * under lane masks). */
#define MG_UKR_ARGS(T)                                                                      \
    mg_int kc, const T *a, mg_int ars, mg_int aks, const T *b, mg_int bks, T *c, mg_int rsc, mg_int csc, \
        mg_int mr, mg_int nr, int overwrite
/* Packers for an operand contiguous along k: dst[k*W + j] = src[j*sw + k], j < w, zero up to W. */
#define MG_PACK_T_ARGS(T) mg_int kc, mg_int w, mg_int W, const T *src, mg_int sw, T *dst
#if MG_X86
void mg_pack_t_f32(MG_PACK_T_ARGS(float));
void mg_pack_t_f64(MG_PACK_T_ARGS(double));
void mg_ukr_avx512_f32(MG_UKR_ARGS(float));
void mg_ukr_avx512_f64(MG_UKR_ARGS(double));
void mg_ukr_avx2_f32(MG_UKR_ARGS(float));
void mg_ukr_avx2_f64(MG_UKR_ARGS(double));
#endif

#endif
