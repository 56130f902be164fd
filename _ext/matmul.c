/* Matrix multiply for float32 and float64: per-path blocking and the shared driver in matmul_tmpl.h. */
#include <stdlib.h>

#include "mg_internal.h"

/* Below this many FLOPs a parallel region costs more than it saves. */
#define MG_PARALLEL_FLOPS 4e6
/* Up to this many rows of A, a row-major B is read in place rather than packed (AVX-512 path). */
#define MG_DIRECT_B_ROWS 64

/* The MC x KC block of A (~200-300 KB) stays in the 1 MiB L2 and the KC x NC block of B in L3; KC is long
 * to amortise C updates.  Swept on 1024^3 products on Zen 5 (one core): flat within noise around these. */
#define T float
#define SFX f32
#define PNR 16
#define PMC 64
#define PKC 256
#define PNC 1024
#define CFG_AVX2 {6, 16, 96, 512, 2048, mg_ukr_avx2_f32, mg_pack_t_f32, 0}
#define CFG_AVX512 {6, 64, 96, 512, 2048, mg_ukr_avx512_f32, mg_pack_t_f32, 1}
#include "matmul_tmpl.h"
#undef T
#undef SFX
#undef PNR
#undef PMC
#undef PKC
#undef PNC
#undef CFG_AVX2
#undef CFG_AVX512

#define T double
#define SFX f64
#define PNR 8
#define PMC 64
#define PKC 256
#define PNC 1024
#define CFG_AVX2 {6, 8, 96, 384, 2048, mg_ukr_avx2_f64, mg_pack_t_f64, 0}
#define CFG_AVX512 {6, 32, 96, 384, 2048, mg_ukr_avx512_f64, mg_pack_t_f64, 1}
#include "matmul_tmpl.h"
