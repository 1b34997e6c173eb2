// SS2D's K-direction scan fused into one pass per (batch, channel) row of the map (chapter 05b). Compiled appended to
// scan_kernel.c (it uses exp_f32). For row (b, d) and direction k, step t reads map position p = tab[k, t]:
//   u_t = x[b, d, p],  dt_t = softplus(<Wdt[k, d, :], dtr[b, k, :, p]> + bias[k, d]),
//   B_t, C_t = BC[b, k, t, 0:N], BC[b, k, t, N:2N]
//   h_t = exp(dt_t A[k, d]) h_{t-1} + dt_t u_t B_t ;  out[b, d, p] += <C_t, h_t> + Dk[k, d] u_t
// so the D-wide u, delta and y are neither gathered into sequences nor scattered back: the map is read and written in
// place, and delta = dt_proj(dtr) is formed row by row from its rank-R input, never stored. x, out, gx: (Bb, Dm, L);
// dtr, gdtr: (Bb, K, R, L) in map order; Wdt, gWdt: (K, Dm, R); BC, gBC: (Bb, K, L, 2N), in each direction's visiting
// order (read and written sequentially; at map positions they would be scattered, and slower); all contiguous.
// Checkpoints every T steps: ckpt (Bb·Dm, K, nch, N). The directions accumulate into out and gx, which the first
// direction's pass writes (the caller need not zero them); gdtr, gWdt, gBC and the other shared gradients are
// per-thread partial sums, zeroed by the caller.
// The skip term Dk u_t is added by a sequential pass over the row in map order, not step by step: every direction
// visits every position once. The pass also brings the row's x and out into L1 before the scan's scattered accesses
// (without it the forward on a 64x64 map runs about 1.5-1.9x slower).
// The loops over the state (n < N) are marked `ivdep` (their arrays never overlap): without that promise gcc
// vectorizes them only behind run-time overlap checks, and the backward's loop runs much slower. A row's steps are
// written once as a macro over the state size NN and expanded for N = 4, 8 and 16 as constants besides the general N:
// with a constant N gcc keeps the state (h, and g in the backward) in vector registers from step to step instead of
// storing and reloading it.

// softplus(v) = max(v, 0) + log1p(exp(-|v|)) and its slope sigmoid(v), in a form gcc vectorizes. float: Cephes' logf
// polynomial on [sqrt(1/2), sqrt(2)] with log1p(z) = log(1 + z)·z/((1 + z) − 1) (exact for tiny z); double: libm.
static inline float log1p_f32(float z) {          // z in [0, 1]
    float u = 1.0f + z, m = u > 1.41421356f ? 0.5f * u : u, e = u > 1.41421356f ? 1.0f : 0.0f, x = m - 1.0f;
    float p = 7.0376836292e-2f;
    p = p * x - 1.1514610310e-1f; p = p * x + 1.1676998740e-1f; p = p * x - 1.2420140846e-1f;
    p = p * x + 1.4249322787e-1f; p = p * x - 1.6668057665e-1f; p = p * x + 2.0000714765e-1f;
    p = p * x - 2.4999993993e-1f; p = p * x + 3.3333331174e-1f;
    float lg = x + x * x * (x * p - 0.5f) + e * 0.693147180559945f;
    return u == 1.0f ? z : lg * (z / (u - 1.0f));
}
static inline void softplus_f32(float v, float* sp, float* sig) {
    float z = exp_f32(v < 0 ? v : -v);
    *sp = (v > 0 ? v : 0) + log1p_f32(z);
    *sig = (v >= 0 ? 1.0f : z) / (1.0f + z);
}
static inline void softplus_f64(double v, double* sp, double* sig) {    // torch's threshold: above 20, softplus(v) = v
    double e = exp(v);
    *sp = v > 20 ? v : log1p(e);
    *sig = v > 20 ? 1 : e / (1 + e);
}

// One row's delta before softplus, in map order: v[p] = bias + sum_r W[r] dtr[r, p] (dt_proj of the rank-R input).
#define DEFINE_DELTA_ROW(real, SUFFIX)                                                                             \
static inline void delta_row_##SUFFIX(const real* dtr, const real* W, real bias, int64_t R, int64_t L, real* v) { \
    for (int64_t p = 0; p < L; p++) v[p] = bias;                                                                 \
    for (int64_t r = 0; r < R; r++) {                                                                            \
        const real *dr = dtr + r * L; real w = W[r];                                                             \
        for (int64_t p = 0; p < L; p++) v[p] += w * dr[p];                                                       \
    }                                                                                                            \
}
DEFINE_DELTA_ROW(float, f32)
DEFINE_DELTA_ROW(double, f64)

// The forward's steps over one row (b, d) in direction k, inside fused_fwd's loops (tk, xr, work, BCk, Ad, ck, yr in
// scope); NN is N or a constant equal to it. Chunk by chunk: the state is checkpointed at the start of each.
#define FUSED_FWD_ROW(real, EXP, NN)                                                                               \
            real h[NN];                                  /* the state */                                         \
            for (int64_t n = 0; n < NN; n++) h[n] = 0;                                                           \
            for (int64_t t0 = 0; t0 < L; t0 += T) {                                                              \
                memcpy(ck + (t0 / T) * NN, h, NN * sizeof(real));              /* the checkpoint of chunk t0/T */ \
                for (int64_t t = t0; t < (t0 + T < L ? t0 + T : L); t++) {                                       \
                    int64_t p = tk[t];                                                                           \
                    real dtv = work[p], uv = xr[p], du = dtv * uv, acc = 0;                                      \
                    const real *Bt = BCk + t * 2 * NN, *Ct = Bt + NN;                                            \
                    _Pragma("GCC ivdep") for (int64_t n = 0; n < NN; n++) {                                      \
                        h[n] = EXP(dtv * Ad[n]) * h[n] + du * Bt[n];                                             \
                        acc += Ct[n] * h[n];                                                                     \
                    }                                                                                            \
                    yr[p] += acc;                                                                                \
                }                                                                                                \
            }

// The backward's steps over one row, inside fused_bwd's loops: chunks from the last, each recomputed from its
// checkpoint into hs, as, then walked backwards. NN as above.
#define FUSED_BWD_ROW(real, EXP, NN)                                                                               \
            real g[NN];                                 /* dL/dh, carried backwards */                          \
            for (int64_t n = 0; n < NN; n++) g[n] = 0;                                                            \
            for (int64_t c = nch - 1; c >= 0; c--) {                                                             \
                int64_t t0 = c * T, len = (t0 + T < L ? T : L - t0);                                             \
                const real *h0 = ck + c * NN;                                                                     \
                for (int64_t j = 0; j < len; j++) {              /* recompute the chunk's states */              \
                    int64_t p = tk[t0 + j];                                                                      \
                    real dtv = dts[p], du = dtv * xr[p];                                                         \
                    const real *hp = j ? hs + (j - 1) * NN : h0, *Bt = BCk + (t0 + j) * 2 * NN;                    \
                    real *hj = hs + j * NN, *aj = as + j * NN;                                                     \
                    _Pragma("GCC ivdep") for (int64_t n = 0; n < NN; n++) {                                                  \
                        aj[n] = EXP(dtv * Ad[n]);                                                                \
                        hj[n] = aj[n] * hp[n] + du * Bt[n];                                                      \
                    }                                                                                            \
                }                                                                                                \
                for (int64_t j = len - 1; j >= 0; j--) {         /* walk it backwards */                         \
                    int64_t p = tk[t0 + j];                                                                      \
                    real dtv = dts[p], uv = xr[p], gyt = gor[p], du = dtv * uv, sB = 0, sA = 0;                  \
                    const real *hp = j ? hs + (j - 1) * NN : h0, *hj = hs + j * NN, *aj = as + j * NN;              \
                    const real *Bt = BCk + (t0 + j) * 2 * NN, *Ct = Bt + NN;                                       \
                    real *gBt = gBCk + (t0 + j) * 2 * NN, *gCt = gBt + NN;                                         \
                    _Pragma("GCC ivdep") for (int64_t n = 0; n < NN; n++) {                                                  \
                        real G = g[n] + Ct[n] * gyt;                 /* dL/dh_t */                               \
                        gCt[n] += gyt * hj[n];                                                                   \
                        gBt[n] += G * du;                                                                        \
                        sB += G * Bt[n];                                                                         \
                        real q = G * hp[n] * aj[n];                  /* dL/d(dt A) */                            \
                        sA += q * Ad[n];                                                                         \
                        gAd[n] += q * dtv;                                                                       \
                        g[n] = aj[n] * G;                            /* on to h_{t-1} */                         \
                    }                                                                                            \
                    gxr[p] += dtv * sB;                                                                          \
                    real gv = (uv * sB + sA) * sig[p];               /* through the softplus */                  \
                    gdr[p] = gv;                                                                                 \
                }                                                                                                \
            }

// With AVX-512 (gcc's __AVX512F__ under -march=native), float32 and N = 16: one 512-bit register holds the state.
// exp is evaluated on its 16 lanes at once (x = n ln2 + r, e^r by a degree-6 polynomial fitted for relative error,
// 2^n applied by vscalefps; within 0.75 ulp on [-87, 0]); and <C_t, h_t> is not reduced step by
// step: the products C_t * h_t of 16 steps are kept, and one 16x16 transpose-and-add (sum16) gives their 16 sums; the
// backward does the same with its two sums per step, and keeps dL/dA in a register for the whole row.
#if defined(__AVX512F__)
#include <immintrin.h>
static inline __m512 exp_f32x16(__m512 x) {       // e^x = 2^n e^r, |r| <= ln2/2; e^r by a degree-6 polynomial
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));   // (x <= 0 here: dt > 0, A < 0)
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);                 // x - n ln2 in two parts
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.3859300e-3f), r, _mm512_set1_ps(8.3747664e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1667726e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666421e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.9999994e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);                  // p * 2^n
}
static inline __m512 sum16(const __m512* v) {     // lane j = the sum of v[j]'s 16 lanes
    __m512 a[8], b[4], c[2];
    for (int i = 0; i < 8; i++)                    // a[i]: lanes 0-7 partial sums of v[2i], 8-15 of v[2i+1]
        a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)                    // b[i]: 128-bit block k holds 4 partial sums of v[4i + k]
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)                    // c[i]: block k, lanes 0-1 of v[8i + k], lanes 2-3 of v[8i + 4 + k]
        c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
    __m512 s = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), s);  // lane 4k + r held v[4r + k]
}
static void fused_fwd_row16_f32(const int64_t* tk, const float* xr, const float* work, const float* BCk,
                                const float* Ad, int64_t L, int64_t T, float* ck, float* yr) {
    __m512 h = _mm512_setzero_ps(), A = _mm512_loadu_ps(Ad), prod[16];
    for (int64_t t0 = 0; t0 < L; t0 += T) {
        _mm512_storeu_ps(ck + (t0 / T) * 16, h);                              // the checkpoint of chunk t0/T
        int64_t t1 = t0 + T < L ? t0 + T : L;
        for (int64_t s0 = t0; s0 < t1; s0 += 16) {                           // 16 steps, then their 16 outputs
            int64_t m = t1 - s0 < 16 ? t1 - s0 : 16;
            for (int64_t j = 0; j < m; j++) {
                int64_t p = tk[s0 + j];
                const float *Bt = BCk + (s0 + j) * 32, dtv = work[p];
                __m512 a = exp_f32x16(_mm512_mul_ps(_mm512_set1_ps(dtv), A));
                h = _mm512_fmadd_ps(a, h, _mm512_mul_ps(_mm512_set1_ps(dtv * xr[p]), _mm512_loadu_ps(Bt)));
                prod[j] = _mm512_mul_ps(_mm512_loadu_ps(Bt + 16), h);                 // C_t * h_t
            }
            for (int64_t j = m; j < 16; j++) prod[j] = _mm512_setzero_ps();
            float ys[16];
            _mm512_storeu_ps(ys, sum16(prod));
            for (int64_t j = 0; j < m; j++) { int64_t p = tk[s0 + j]; yr[p] += ys[j]; }
        }
    }
}
static void fused_bwd_row16_f32(const int64_t* tk, const float* xr, const float* gor, const float* dts, const float* sig,
        const float* BCk, float* gBCk, const float* Ad, float* gAd, const float* ck, int64_t L, int64_t T,
        float* hs, float* as, float* gxr, float* gdr) {
    __m512 A = _mm512_loadu_ps(Ad), g = _mm512_setzero_ps(), gA = _mm512_setzero_ps(), GB[16], QA[16];
    for (int64_t c = (L + T - 1) / T - 1; c >= 0; c--) {
        int64_t t0 = c * T, len = t0 + T < L ? T : L - t0;
        __m512 h = _mm512_loadu_ps(ck + c * 16);
        for (int64_t j = 0; j < len; j++) {                                  // recompute the chunk's states
            int64_t p = tk[t0 + j];
            float dtv = dts[p];
            __m512 a = exp_f32x16(_mm512_mul_ps(_mm512_set1_ps(dtv), A));
            h = _mm512_fmadd_ps(a, h, _mm512_mul_ps(_mm512_set1_ps(dtv * xr[p]), _mm512_loadu_ps(BCk + (t0 + j) * 32)));
            _mm512_storeu_ps(hs + j * 16, h); _mm512_storeu_ps(as + j * 16, a);
        }
        for (int64_t j1 = len - 1; j1 >= 0; j1 -= 16) {                      // walk it backwards, 16 steps at a time
            int64_t m = j1 + 1 < 16 ? j1 + 1 : 16;
            for (int64_t i = 0; i < m; i++) {
                int64_t j = j1 - i, t = t0 + j, p = tk[t];
                float dtv = dts[p], du = dtv * xr[p], gyt = gor[p];
                const float *Bt = BCk + t * 32;
                float *gBt = gBCk + t * 32;
                __m512 hj = _mm512_loadu_ps(hs + j * 16), aj = _mm512_loadu_ps(as + j * 16);
                __m512 hp = _mm512_loadu_ps(j ? hs + (j - 1) * 16 : ck + c * 16);
                __m512 G = _mm512_fmadd_ps(_mm512_loadu_ps(Bt + 16), _mm512_set1_ps(gyt), g);         // dL/dh_t
                _mm512_storeu_ps(gBt + 16, _mm512_fmadd_ps(_mm512_set1_ps(gyt), hj, _mm512_loadu_ps(gBt + 16)));
                _mm512_storeu_ps(gBt, _mm512_fmadd_ps(G, _mm512_set1_ps(du), _mm512_loadu_ps(gBt)));
                GB[i] = _mm512_mul_ps(G, _mm512_loadu_ps(Bt));
                __m512 q = _mm512_mul_ps(_mm512_mul_ps(G, hp), aj);                                  // dL/d(dt A)
                QA[i] = _mm512_mul_ps(q, A);
                gA = _mm512_fmadd_ps(q, _mm512_set1_ps(dtv), gA);
                g = _mm512_mul_ps(aj, G);                                                             // on to h_{t-1}
            }
            for (int64_t i = m; i < 16; i++) GB[i] = QA[i] = _mm512_setzero_ps();
            float sB[16], sA[16];
            _mm512_storeu_ps(sB, sum16(GB)); _mm512_storeu_ps(sA, sum16(QA));
            for (int64_t i = 0; i < m; i++) {
                int64_t p = tk[t0 + j1 - i];
                float dtv = dts[p], gv = (xr[p] * sB[i] + sA[i]) * sig[p];                          // through the softplus
                gxr[p] += dtv * sB[i];
                gdr[p] = gv;
            }
        }
    }
    _mm512_storeu_ps(gAd, _mm512_add_ps(_mm512_loadu_ps(gAd), gA));
}
#define FUSED_FWD_ROW16_f32 fused_fwd_row16_f32(tk, xr, work, BCk, Ad, L, T, ck, yr);
#define FUSED_BWD_ROW16_f32 fused_bwd_row16_f32(tk, xr, gor, dts, sig, BCk, gBCk, Ad, gAd, ck, L, T, hs, as, gxr, gdr);
#else
#define FUSED_FWD_ROW16_f32 { FUSED_FWD_ROW(float, exp_f32, 16) }
#define FUSED_BWD_ROW16_f32 { FUSED_BWD_ROW(float, exp_f32, 16) }
#endif
#define FUSED_FWD_ROW16_f64 { FUSED_FWD_ROW(double, exp_f64, 16) }
#define FUSED_BWD_ROW16_f64 { FUSED_BWD_ROW(double, exp_f64, 16) }

#define DEFINE_FUSED(real, EXP, SUFFIX)                                                                            \
void fused_fwd_##SUFFIX(int64_t r0, int64_t r1, int64_t Dm, int64_t K, int64_t L, int64_t N, int64_t T, int64_t R, \
        const real* x, const int64_t* tab, const real* dtr, const real* Wdt, const real* bias, const real* A,    \
        const real* BC, const real* Dk, real* out, real* ckpt, real* work) {         /* work: L reals */         \
    int64_t nch = (L + T - 1) / T;                                                                               \
    for (int64_t k = 0; k < K; k++) {            /* direction outside: B, C of (b, k) stay in cache over rows */ \
        const int64_t* tk = tab + k * L;                                                                         \
        for (int64_t row = r0; row < r1; row++) {                                                                \
            int64_t b = row / Dm, d = row % Dm, kd = k * Dm + d;                                                 \
            const real *xr = x + row * L, *dr = dtr + (b * K + k) * R * L, *Wd = Wdt + kd * R, *Ad = A + kd * N; \
            const real *BCk = BC + (b * K + k) * L * 2 * N;                                                      \
            real bkd = bias[kd], Dkd = Dk[kd], *yr = out + row * L, *ck = ckpt + (row * K + k) * nch * N;       \
            real slope;                                                                                         \
            delta_row_##SUFFIX(dr, Wd, bkd, R, L, work);                                                         \
            for (int64_t p = 0; p < L; p++) softplus_##SUFFIX(work[p], work + p, &slope);       /* map order */  \
            for (int64_t p = 0; p < L; p++) yr[p] = (k ? yr[p] : 0) + Dkd * xr[p];   /* D u; warms x, out */ \
            switch (N) {                              /* a constant N keeps the state in registers */            \
                case 4: { FUSED_FWD_ROW(real, EXP, 4) } break;                                                    \
                case 8: { FUSED_FWD_ROW(real, EXP, 8) } break;                                                    \
                case 16: FUSED_FWD_ROW16_##SUFFIX break;                                                              \
                default: { FUSED_FWD_ROW(real, EXP, N) }                                                          \
            }                                                                                                    \
        }                                                                                                        \
    }                                                                                                            \
}                                                                                                                \
/* Reverse: gout (B, Dm, L) in; gx (written), and per-thread partial sums gdtr, gWdt, gA (K, Dm, N), gBC,   */ \
/* gD, gbias (K, Dm) out. work: 2*T*N + 3*L reals (a chunk's states and decays; the row's steps, slopes, dL/d delta). */ \
void fused_bwd_##SUFFIX(int64_t r0, int64_t r1, int64_t Dm, int64_t K, int64_t L, int64_t N, int64_t T, int64_t R, \
        const real* x, const int64_t* tab, const real* dtr, const real* Wdt, const real* bias, const real* A,    \
        const real* BC, const real* Dk, const real* ckpt, const real* gout, real* gx, real* gdtr, real* gWdt,    \
        real* gA, real* gBC, real* gD, real* gbias, real* work) {                                                \
    int64_t nch = (L + T - 1) / T;                                                                               \
    real *hs = work, *as = work + T * N, *dts = work + 2 * T * N, *sig = dts + L, *gdr = sig + L;                \
    for (int64_t k = 0; k < K; k++) {                                                                            \
        const int64_t* tk = tab + k * L;                                                                         \
        for (int64_t row = r0; row < r1; row++) {                                                                \
            int64_t b = row / Dm, d = row % Dm, kd = k * Dm + d;                                                 \
            const real *xr = x + row * L, *gor = gout + row * L, *dr = dtr + (b * K + k) * R * L, *Ad = A + kd * N; \
            const real *BCk = BC + (b * K + k) * L * 2 * N, *ck = ckpt + (row * K + k) * nch * N;                \
            real *gxr = gx + row * L, *gBCk = gBC + (b * K + k) * L * 2 * N, *gAd = gA + kd * N;                 \
            const real *Wd = Wdt + kd * R;                                                                       \
            real bkd = bias[kd], Dkd = Dk[kd], gDkd = 0, gbkd = 0;                                              \
            delta_row_##SUFFIX(dr, Wd, bkd, R, L, dts);                                                          \
            for (int64_t p = 0; p < L; p++) softplus_##SUFFIX(dts[p], dts + p, sig + p);                         \
            for (int64_t p = 0; p < L; p++) { gxr[p] = (k ? gxr[p] : 0) + Dkd * gor[p]; gDkd += gor[p] * xr[p]; } \
            switch (N) {                                                                                         \
                case 4: { FUSED_BWD_ROW(real, EXP, 4) } break;                                                    \
                case 8: { FUSED_BWD_ROW(real, EXP, 8) } break;                                                    \
                case 16: FUSED_BWD_ROW16_##SUFFIX break;                                                              \
                default: { FUSED_BWD_ROW(real, EXP, N) }                                                          \
            }                                                                                                    \
            for (int64_t p = 0; p < L; p++) gbkd += gdr[p];               /* the bias's gradient: sum of dL/d delta */ \
            gD[kd] += gDkd; gbias[kd] += gbkd;                                                                   \
            for (int64_t r = 0; r < R; r++) {                /* through dt_proj: delta = Wdt . dtr */                \
                const real *dtr_r = dr + r * L; real *gdtr_r = gdtr + ((b * K + k) * R + r) * L, w = Wd[r], s = 0; \
                for (int64_t p = 0; p < L; p++) { s += gdr[p] * dtr_r[p]; gdtr_r[p] += w * gdr[p]; }           \
                gWdt[kd * R + r] += s;                                                                           \
            }                                                                                                    \
        }                                                                                                        \
    }                                                                                                            \
}

DEFINE_FUSED(float, exp_f32, f32)
DEFINE_FUSED(double, exp_f64, f64)
