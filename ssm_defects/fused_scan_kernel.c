// SS2D's K-direction scan fused into one pass per (batch, channel) row of the map (chapter 05b). Compiled appended to
// scan_kernel.c (it uses exp_f32). For row (b, d) and direction k, step t reads map position p = tab[k, t]:
//   u_t = x[b, d, p],  dt_t = softplus(<Wdt[k, d, :], dtr[b, k, :, p]> + bias[k, d]),
//   B_t, C_t = BC[b, k, t, 0:N], BC[b, k, t, N:2N]
//   h_t = exp(dt_t A[k, d]) h_{t-1} + dt_t u_t B_t ;  out[b, d, p] += <C_t, h_t> + Dk[k, d] u_t
// so the D-wide u, delta and y are neither gathered into sequences nor scattered back: the map is read and written in
// place, and delta = dt_proj(dtr) is formed row by row from its rank-R input, never stored. x, out, gx: (Bb, Dm, L);
// dtr, gdtr: (Bb, K, R, L) in map order; Wdt, gWdt: (K, Dm, R); BC, gBC: (Bb, K, L, 2N), in each direction's visiting
// order; all contiguous. Checkpoints every T steps: ckpt (Bb·Dm, K, nch, N). out and gx must be zeroed by the caller
// (the directions accumulate into them); gdtr, gWdt and the other shared gradients are per-thread partial sums.
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
                    yr[p] += acc + Dkd * uv;                                                                     \
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
                    gxr[p] += dtv * sB + Dkd * gyt;                                                              \
                    real gv = (uv * sB + sA) * sig[p];               /* through the softplus */                  \
                    gdr[p] = gv; gbkd += gv; gDkd += gyt * uv;                                                   \
                }                                                                                                \
            }

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
            switch (N) {                              /* a constant N keeps the state in registers */            \
                case 4: { FUSED_FWD_ROW(real, EXP, 4) } break;                                                    \
                case 8: { FUSED_FWD_ROW(real, EXP, 8) } break;                                                    \
                case 16: { FUSED_FWD_ROW(real, EXP, 16) } break;                                                  \
                default: { FUSED_FWD_ROW(real, EXP, N) }                                                          \
            }                                                                                                    \
        }                                                                                                        \
    }                                                                                                            \
}                                                                                                                \
/* Reverse: gout (B, Dm, L) in; gx (accumulated), and per-thread partial sums gdtr, gWdt, gA (K, Dm, N), gBC,   */ \
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
            switch (N) {                                                                                         \
                case 4: { FUSED_BWD_ROW(real, EXP, 4) } break;                                                    \
                case 8: { FUSED_BWD_ROW(real, EXP, 8) } break;                                                    \
                case 16: { FUSED_BWD_ROW(real, EXP, 16) } break;                                                  \
                default: { FUSED_BWD_ROW(real, EXP, N) }                                                          \
            }                                                                                                    \
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
