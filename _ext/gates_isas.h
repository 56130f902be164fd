/* gates_tmpl.h instantiated once per ISA path for the element type T (suffix SFX) that gates.c defines
 * before including this; T and SFX are undefined afterwards. */
#define ISA portable
#define TARGET
#include "gates_tmpl.h"
#if MG_X86
#undef ISA
#undef TARGET
#define ISA avx2
#define TARGET MG_TARGET_AVX2
#include "gates_tmpl.h"
#undef ISA
#undef TARGET
#define ISA avx512
#define TARGET MG_TARGET_AVX512
#define GATE_VEC
#include "gates_tmpl.h"
#undef GATE_VEC
#endif
#undef T
#undef SFX
#undef ISA
#undef TARGET
