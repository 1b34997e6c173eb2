// Selective scan on one (batch, channel) row at a time: x_t = exp(dt_t A) x_{t-1} + dt_t u_t B_t ; y_t = <C_t, x_t> + D u_t
// (the state x_t is the array h[] below).
// B and C are laid out (Bb, G, Lb, N), contiguous; row (b, d) reads group d / gs at offset b*sb + g*sg + t*st.
#include <math.h>
#include <string.h>
#include <stdint.h>
#define NMAX 256

static inline float exp_f32(float x) {   // Cephes expf: Cody-Waite reduction + degree-6 polynomial, ~1 ulp
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f; p = p * r + 8.3334519073e-3f; p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f; p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } s; s.i = ((int32_t)n + 127) << 23;
    return p * s.f;
}
static inline double exp_f64(double x) { return exp(x); }

#define DEFINE_SCAN(real, EXP, SUFFIX)                                                                            \
void scan_fwd_##SUFFIX(int64_t r0, int64_t r1, int64_t dim, int64_t L, int64_t N, int64_t T,                    \
        const real* u, const real* dt, const real* A,                                                             \
        const real* B, int64_t bgs, int64_t bsb, int64_t bsg, int64_t bst,                                        \
        const real* C, int64_t cgs, int64_t csb, int64_t csg, int64_t cst,                                        \
        const real* D, real* y, real* last, real* ckpt) {                                                         \
    int64_t nch = (L + T - 1) / T;                                                                                \
    for (int64_t row = r0; row < r1; row++) {                                                                     \
        int64_t b = row / dim, d = row % dim;                                                                     \
        const real *Ad = A + d * N, *ur = u + row * L, *dr = dt + row * L;                                        \
        const real *Bp = B + b * bsb + (d / bgs) * bsg, *Cp = C + b * csb + (d / cgs) * csg;                     \
        real Dd = D ? D[d] : 0, *yr = y + row * L;                                                                \
        real h[NMAX];                                                                                             \
        for (int64_t n = 0; n < N; n++) h[n] = 0;                                                                 \
        for (int64_t t = 0; t < L; t++) {                                                                         \
            if (t % T == 0) memcpy(ckpt + (row * nch + t / T) * N, h, N * sizeof(real));                          \
            real dtv = dr[t], du = dtv * ur[t], acc = 0;                                                          \
            const real *Bt = Bp + t * bst, *Ct = Cp + t * cst;                                                    \
            for (int64_t n = 0; n < N; n++) {                                                                     \
                h[n] = EXP(dtv * Ad[n]) * h[n] + du * Bt[n];                                                      \
                acc += Ct[n] * h[n];                                                                              \
            }                                                                                                     \
            yr[t] = acc + Dd * ur[t];                                                                             \
        }                                                                                                         \
        memcpy(last + row * N, h, N * sizeof(real));                                                              \
    }                                                                                                             \
}                                                                                                                 \
/* Reverse scan. gy: gradient of y. Partial sums of this thread: gA (dim, N), gB, gC (layout of B, C), gD (dim).  */ \
/* work: 2*T*N reals. Recomputes each chunk's states from its checkpoint, then walks the chunk backwards.        */ \
void scan_bwd_##SUFFIX(int64_t r0, int64_t r1, int64_t dim, int64_t L, int64_t N, int64_t T,                    \
        const real* u, const real* dt, const real* A,                                                             \
        const real* B, int64_t bgs, int64_t bsb, int64_t bsg, int64_t bst,                                        \
        const real* C, int64_t cgs, int64_t csb, int64_t csg, int64_t cst,                                        \
        const real* D, const real* ckpt, const real* gy, const real* glast,                                       \
        real* gu, real* gdt, real* gA, real* gB, real* gC, real* gD, real* y, real* work) {                       \
    int64_t nch = (L + T - 1) / T;                                                                                \
    real *hs = work, *as = work + T * N;                                                                          \
    for (int64_t row = r0; row < r1; row++) {                                                                     \
        int64_t b = row / dim, d = row % dim;                                                                     \
        const real *Ad = A + d * N, *ur = u + row * L, *dr = dt + row * L, *gyr = gy + row * L;                  \
        int64_t boff = b * bsb + (d / bgs) * bsg, coff = b * csb + (d / cgs) * csg;                              \
        real Dd = D ? D[d] : 0, gDd = 0, *gAd = gA + d * N;                                                       \
        real g[NMAX];                                                                                             \
        for (int64_t n = 0; n < N; n++) g[n] = glast[row * N + n];                                                \
        for (int64_t c = nch - 1; c >= 0; c--) {                                                                  \
            int64_t t0 = c * T, len = (t0 + T < L ? T : L - t0);                                                  \
            const real *h0 = ckpt + (row * nch + c) * N;                                                          \
            for (int64_t k = 0; k < len; k++) {                  /* recompute the chunk's states */               \
                int64_t t = t0 + k;                                                                               \
                real dtv = dr[t], du = dtv * ur[t], acc = 0;                                                      \
                const real *hp = k ? hs + (k - 1) * N : h0, *Bt = B + boff + t * bst, *Ct = C + coff + t * cst;   \
                real *hk = hs + k * N, *ak = as + k * N;                                                          \
                for (int64_t n = 0; n < N; n++) {                                                                 \
                    ak[n] = EXP(dtv * Ad[n]);                                                                     \
                    hk[n] = ak[n] * hp[n] + du * Bt[n];                                                           \
                    acc += Ct[n] * hk[n];                                                                         \
                }                                                                                                 \
                y[row * L + t] = acc + Dd * ur[t];                                                                \
            }                                                                                                     \
            for (int64_t k = len - 1; k >= 0; k--) {             /* walk it backwards */                          \
                int64_t t = t0 + k;                                                                               \
                real dtv = dr[t], uv = ur[t], gyt = gyr[t], du = dtv * uv, sB = 0, sA = 0;                        \
                const real *hp = k ? hs + (k - 1) * N : h0, *hk = hs + k * N, *ak = as + k * N;                   \
                const real *Bt = B + boff + t * bst, *Ct = C + coff + t * cst;                                    \
                real *gBt = gB + boff + t * bst, *gCt = gC + coff + t * cst;                                      \
                for (int64_t n = 0; n < N; n++) {                                                                 \
                    real G = g[n] + Ct[n] * gyt;                 /* dL/dh_t */                                    \
                    gCt[n] += gyt * hk[n];                                                                        \
                    gBt[n] += G * du;                                                                             \
                    sB += G * Bt[n];                                                                              \
                    real q = G * hp[n] * ak[n];                  /* dL/d(dt A) */                                 \
                    sA += q * Ad[n];                                                                              \
                    gAd[n] += q * dtv;                                                                            \
                    g[n] = ak[n] * G;                            /* on to h_{t-1} */                              \
                }                                                                                                 \
                gu[row * L + t] = dtv * sB + Dd * gyt;                                                            \
                gdt[row * L + t] = uv * sB + sA;                                                                  \
                gDd += gyt * uv;                                                                                  \
            }                                                                                                     \
        }                                                                                                         \
        if (D) gD[d] += gDd;                                                                                      \
    }                                                                                                             \
}

DEFINE_SCAN(float, exp_f32, f32)
DEFINE_SCAN(double, exp_f64, f64)
