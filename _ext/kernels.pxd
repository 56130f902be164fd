# Declarations of the C kernels in kernels.h, for _kernels.pyx.

cdef extern from "kernels.h" nogil:
    int MG_ABI_VERSION
    ctypedef Py_ssize_t mg_int

    enum:
        MG_ISA_PORTABLE
        MG_ISA_AVX2
        MG_ISA_AVX512
        MG_ISA_COUNT

    int mg_isa_supported(int isa)
    int mg_best_isa()
    int mg_get_isa()
    int mg_set_isa(int isa)

    int mg_openmp()
    int mg_get_num_threads()
    void mg_set_num_threads(int n)

    int mg_matmul_f32(mg_int batch, mg_int M, mg_int N, mg_int K,
                      const float *A, mg_int sab, mg_int sam, mg_int sak,
                      const float *B, mg_int sbb, mg_int sbk, mg_int sbn,
                      float *C, mg_int scb, mg_int scm, mg_int scn, int accumulate)
    int mg_matmul_f64(mg_int batch, mg_int M, mg_int N, mg_int K,
                      const double *A, mg_int sab, mg_int sam, mg_int sak,
                      const double *B, mg_int sbb, mg_int sbk, mg_int sbn,
                      double *C, mg_int scb, mg_int scm, mg_int scn, int accumulate)

    mg_int mg_packed_len_f32(int isa, mg_int K, mg_int N)
    mg_int mg_packed_len_f64(int isa, mg_int K, mg_int N)
    void mg_pack_b_f32(int isa, mg_int K, mg_int N, const float *B, mg_int sbk, mg_int sbn, float *dst)
    void mg_pack_b_f64(int isa, mg_int K, mg_int N, const double *B, mg_int sbk, mg_int sbn, double *dst)
    int mg_matmul_packed_f32(int isa, mg_int batch, mg_int M, mg_int N, mg_int K,
                             const float *A, mg_int sab, mg_int sam, mg_int sak, const float *P,
                             float *C, mg_int scb, mg_int scm, mg_int scn, int accumulate)
    int mg_matmul_packed_f64(int isa, mg_int batch, mg_int M, mg_int N, mg_int K,
                             const double *A, mg_int sab, mg_int sam, mg_int sak, const double *P,
                             double *C, mg_int scb, mg_int scm, mg_int scn, int accumulate)

    int mg_addmm_f32(int isa, mg_int M, mg_int N, mg_int K, const float *Cin, mg_int sim, mg_int sin,
                     const float *A, mg_int sam, mg_int sak, const float *B, mg_int sbk, mg_int sbn,
                     const float *P, float *C, mg_int scm, mg_int scn, int tanh_out)
    int mg_addmm_f64(int isa, mg_int M, mg_int N, mg_int K, const double *Cin, mg_int sim, mg_int sin,
                     const double *A, mg_int sam, mg_int sak, const double *B, mg_int sbk, mg_int sbn,
                     const double *P, double *C, mg_int scm, mg_int scn, int tanh_out)
    int mg_addmm_many_f32(int isa, mg_int count, mg_int M, mg_int N, mg_int K, const float *const *Cin,
                          mg_int sim, mg_int sin, const float *const *A, mg_int sam, mg_int sak,
                          const float *const *P, float *const *C, mg_int scm, mg_int scn, int tanh_out)
    int mg_addmm_many_f64(int isa, mg_int count, mg_int M, mg_int N, mg_int K, const double *const *Cin,
                          mg_int sim, mg_int sin, const double *const *A, mg_int sam, mg_int sak,
                          const double *const *P, double *const *C, mg_int scm, mg_int scn, int tanh_out)
    int mg_addmm_seq_f32(int isa, mg_int count, mg_int L, mg_int M, mg_int N, const float *const *Cin,
                         mg_int cts, mg_int sim, const float *const *H0, mg_int shm, const float *const *P,
                         float *const *C, mg_int ots, mg_int som, const int *reverse, int tanh_out)
    int mg_addmm_seq_f64(int isa, mg_int count, mg_int L, mg_int M, mg_int N, const double *const *Cin,
                         mg_int cts, mg_int sim, const double *const *H0, mg_int shm, const double *const *P,
                         double *const *C, mg_int ots, mg_int som, const int *reverse, int tanh_out)
    int mg_lstm_seq_f32(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const float *const *Xg, mg_int xts,
                        mg_int xm, const float *const *H0, mg_int shm, const float *const *C0, mg_int scm,
                        const float *const *P, float *const *Act, float *const *C, float *const *Tc,
                        float *const *Out, mg_int ots, mg_int som, const int *reverse)
    int mg_lstm_seq_f64(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const double *const *Xg,
                        mg_int xts, mg_int xm, const double *const *H0, mg_int shm, const double *const *C0,
                        mg_int scm, const double *const *P, double *const *Act, double *const *C,
                        double *const *Tc, double *const *Out, mg_int ots, mg_int som, const int *reverse)
    int mg_gru_seq_f32(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const float *const *Xg, mg_int xts,
                       mg_int xm, const float *const *Bh, mg_int bm, const float *const *H0, mg_int shm,
                       const float *const *P, float *const *Hg, float *const *Act, float *const *Out, mg_int ots,
                       mg_int som, const int *reverse)
    int mg_gru_seq_f64(int isa, mg_int count, mg_int L, mg_int M, mg_int H, const double *const *Xg,
                       mg_int xts, mg_int xm, const double *const *Bh, mg_int bm, const double *const *H0,
                       mg_int shm, const double *const *P, double *const *Hg, double *const *Act,
                       double *const *Out, mg_int ots, mg_int som, const int *reverse)
    int mg_lstm_seq_backward_f32(int isa, mg_int n, mg_int M, mg_int H, const float *const *G, const mg_int *gs,
                                 const float *DC, mg_int dcs, const float *const *Act, const mg_int *as,
                                 const float *const *Cp, const mg_int *cps, const float *const *Tc,
                                 const mg_int *tcs, const float *P, float *const *DG, const mg_int *dgs,
                                 float *DCP, mg_int dcps)
    int mg_lstm_seq_backward_f64(int isa, mg_int n, mg_int M, mg_int H, const double *const *G,
                                 const mg_int *gs, const double *DC, mg_int dcs, const double *const *Act,
                                 const mg_int *as, const double *const *Cp, const mg_int *cps,
                                 const double *const *Tc, const mg_int *tcs, const double *P, double *const *DG,
                                 const mg_int *dgs, double *DCP, mg_int dcps)
    int mg_gru_seq_backward_f32(int isa, mg_int n, mg_int M, mg_int H, const float *const *G, const mg_int *gs,
                                const float *const *Act, const mg_int *as, const float *const *Hn,
                                const mg_int *hns, const float *const *Hp, const mg_int *hps, const float *P,
                                float *const *DX, const mg_int *dxs, float *const *DHG, const mg_int *dhgs,
                                float *DHP, mg_int dhps)
    int mg_gru_seq_backward_f64(int isa, mg_int n, mg_int M, mg_int H, const double *const *G,
                                const mg_int *gs, const double *const *Act, const mg_int *as,
                                const double *const *Hn, const mg_int *hns, const double *const *Hp,
                                const mg_int *hps, const double *P, double *const *DX, const mg_int *dxs,
                                double *const *DHG, const mg_int *dhgs, double *DHP, mg_int dhps)
    void mg_share_trace(mg_int n, const long long *jobs, long long *paused_for)
    void mg_distance_trace(mg_int n, const long long *ns, int *far)
    int mg_threads_far()
    int mg_tanh_seq_backward_f32(int isa, mg_int n, mg_int M, mg_int N, const float *const *G, const mg_int *gs,
                                 const float *const *Y, const mg_int *ys, const float *P, float *const *DZ,
                                 const mg_int *ds)
    int mg_tanh_seq_backward_f64(int isa, mg_int n, mg_int M, mg_int N, const double *const *G,
                                 const mg_int *gs, const double *const *Y, const mg_int *ys, const double *P,
                                 double *const *DZ, const mg_int *ds)
    int mg_matmul_rows_f32(mg_int M, mg_int N, mg_int K, const float *const *arows, const float *const *brows,
                           float *C, mg_int scm, int accumulate)
    int mg_matmul_rows_f64(mg_int M, mg_int N, mg_int K, const double *const *arows,
                           const double *const *brows, double *C, mg_int scm, int accumulate)

    void mg_tanh_f32(mg_int n, const float *x, float *y)
    void mg_tanh_f64(mg_int n, const double *x, double *y)
    void mg_tanh_backward_f32(mg_int n, const float *g, const float *y, float *out)
    void mg_tanh_backward_f64(mg_int n, const double *g, const double *y, double *out)
    void mg_sigmoid_f32(mg_int n, const float *x, float *y)
    void mg_sigmoid_f64(mg_int n, const double *x, double *y)
    void mg_sigmoid_backward_f32(mg_int n, const float *g, const float *y, float *out)
    void mg_sigmoid_backward_f64(mg_int n, const double *g, const double *y, double *out)
    enum:
        MG_OP_ADD
        MG_OP_SUB
        MG_OP_MUL
        MG_OP_DIV
    void mg_arith_f32(int op, mg_int n, const float *a, int sa, const float *b, int sb, float *out)
    void mg_arith_f64(int op, mg_int n, const double *a, int sa, const double *b, int sb, double *out)
    void mg_arith_rows_f32(int op, mg_int rows, mg_int cols, const float *a, mg_int ra, int sa, const float *b,
                           mg_int rb, int sb, float *out)
    void mg_arith_rows_f64(int op, mg_int rows, mg_int cols, const double *a, mg_int ra, int sa, const double *b,
                           mg_int rb, int sb, double *out)
    const char *MG_ARITH_ROWS_CAPSULE
    ctypedef struct mg_arith_rows_api:
        void (*f32)(int, mg_int, mg_int, const float *, mg_int, int, const float *, mg_int, int,
                    float *) noexcept nogil
        void (*f64)(int, mg_int, mg_int, const double *, mg_int, int, const double *, mg_int, int,
                    double *) noexcept nogil
    void mg_lstm_forward_f32(mg_int B, mg_int H, const float *gates, mg_int gs, const float *c_prev, mg_int cps,
                             float *act, mg_int as_, float *c, mg_int cs, float *tanh_c, mg_int tcs, float *h,
                             mg_int hs)
    void mg_lstm_forward_f64(mg_int B, mg_int H, const double *gates, mg_int gs, const double *c_prev,
                             mg_int cps, double *act, mg_int as_, double *c, mg_int cs, double *tanh_c, mg_int tcs,
                             double *h, mg_int hs)
    void mg_lstm_backward_f32(mg_int B, mg_int H, const float *dh, mg_int dhs, const float *dc, mg_int dcs,
                              const float *act, mg_int as_, const float *c_prev, mg_int cps, const float *tanh_c,
                              mg_int tcs, float *d_gates, mg_int dgs, float *dc_prev, mg_int dcps)
    void mg_lstm_backward_f64(mg_int B, mg_int H, const double *dh, mg_int dhs, const double *dc, mg_int dcs,
                              const double *act, mg_int as_, const double *c_prev, mg_int cps,
                              const double *tanh_c, mg_int tcs, double *d_gates, mg_int dgs, double *dc_prev,
                              mg_int dcps)
    void mg_gru_forward_f32(mg_int B, mg_int H, const float *xg, mg_int xs, const float *hg, mg_int hgs,
                            const float *h_prev, mg_int hps, float *act, mg_int as_, float *h, mg_int hs)
    void mg_gru_forward_f64(mg_int B, mg_int H, const double *xg, mg_int xs, const double *hg, mg_int hgs,
                            const double *h_prev, mg_int hps, double *act, mg_int as_, double *h, mg_int hs)
    void mg_gru_backward_f32(mg_int B, mg_int H, const float *dh, mg_int dhs, const float *act, mg_int as_,
                             const float *hn, mg_int hns, const float *h_prev, mg_int hps, float *d_xg,
                             mg_int dxs, float *d_hg, mg_int dhgs, float *dh_prev, mg_int dhps)
    void mg_gru_backward_f64(mg_int B, mg_int H, const double *dh, mg_int dhs, const double *act, mg_int as_,
                             const double *hn, mg_int hns, const double *h_prev, mg_int hps, double *d_xg,
                             mg_int dxs, double *d_hg, mg_int dhgs, double *dh_prev, mg_int dhps)
    void mg_sum_rows_f32(mg_int M, mg_int N, const float *a, mg_int sam, float *out)
    void mg_sum_rows_f64(mg_int M, mg_int N, const double *a, mg_int sam, double *out)
    int mg_sub_sqsum_f32(mg_int n, const float *x, const float *t, float *diff, double *sum)
    int mg_sub_sqsum_f64(mg_int n, const double *x, const double *t, double *diff, double *sum)
    void mg_tanh_rows_f32(mg_int rows, mg_int cols, const float *x, mg_int xs, float *y, mg_int ys)
    void mg_tanh_rows_f64(mg_int rows, mg_int cols, const double *x, mg_int xs, double *y, mg_int ys)
    void mg_tanh_backward_rows_f32(mg_int rows, mg_int cols, const float *g, mg_int gs, const float *y,
                                   mg_int ys, float *out, mg_int os)
    void mg_tanh_backward_rows_f64(mg_int rows, mg_int cols, const double *g, mg_int gs, const double *y,
                                   mg_int ys, double *out, mg_int os)
    void mg_sigmoid_rows_f32(mg_int rows, mg_int cols, const float *x, mg_int xs, float *y, mg_int ys)
    void mg_sigmoid_rows_f64(mg_int rows, mg_int cols, const double *x, mg_int xs, double *y, mg_int ys)
    void mg_sigmoid_backward_rows_f32(mg_int rows, mg_int cols, const float *g, mg_int gs, const float *y,
                                      mg_int ys, float *out, mg_int os)
    void mg_sigmoid_backward_rows_f64(mg_int rows, mg_int cols, const double *g, mg_int gs, const double *y,
                                      mg_int ys, double *out, mg_int os)

    void *mg_cache_malloc(void *ctx, size_t size)
    void *mg_cache_calloc(void *ctx, size_t nelem, size_t elsize)
    void *mg_cache_realloc(void *ctx, void *ptr, size_t new_size)
    void mg_cache_free(void *ctx, void *ptr, size_t size)
    void mg_cache_empty()
    void mg_cache_set_limit(size_t bytes)
    void mg_cache_stats(size_t *idle, size_t *blocks, size_t *limit, unsigned long long *hits,
                        unsigned long long *misses)
