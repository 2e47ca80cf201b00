/*
 * Memory-bound small-M matrix products for x86-64 CPUs with AVX2 + FMA:  y[m, n] = sum_k x[m, k] * w[n, k].
 *
 * x, w (N x K, the nn.Linear layout) and y (M x N) are each bf16 or fp32; all rows contiguous with a given row
 * stride. Built for decode steps (M = 1..15 rows): each weight row is streamed from memory once for all M rows
 * (one row of x: each weight row read strictly in order; more rows: blocks of MB rows of x re-read a block of NR
 * weight rows from cache, not memory), and a bf16 weight is widened to fp32 in registers, never materialised. The result is the exact fp32 sum of exact products, as PyTorch's own kernels
 * compute it, up to summation order; a bf16 y is rounded once (to nearest even) from that sum.
 *
 * bf16 weights are read 16 at a time as eight 32-bit pairs: the high halves are already fp32 bit patterns once the low
 * half is masked off, the low halves once shifted up. So the kernel multiplies the even-indexed weights of each
 * 16-wide chunk by the even-indexed x values and the odd by the odd: x is copied once per call into that
 * "even/odd" order (xk in hy_linear), which costs M * K floats and saves a shuffle per weight vector.
 *
 * Threads: an OpenMP loop over blocks of output columns (a static schedule: one contiguous range per thread); compiled with -fopenmp, this library binds to the libgomp
 * that PyTorch has already loaded (same soname), so it shares PyTorch's thread pool.
 * Compiled and loaded at run time by hunyuan/kernels/__init__.py; see docs/cpu-kernels.md.
 */
#include "hy_common.h"
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NR 4      /* weight rows per block */
#define MB 3      /* x rows per register block (NR * MB accumulators) */
#define PF 8      /* prefetch the weight rows this many rows ahead (the next blocks) */

/* The register-blocked micro kernel: out[r][m] = sum over k < kn of w_r[k] * x_m[k] for NRB weight rows and NMB rows
 * of x (compile-time constants after inlining, so the NRB * NMB accumulators live in registers).
 * BF16 = 0: fp32 weights, x in natural order.
 * BF16 = 1: bf16 weights, x in even/odd order (see the top of the file). kn is a multiple of 16. */
static inline __attribute__((always_inline)) void micro(const float *x, int64_t ldx, const void *w, int64_t ldw,
                                                        int64_t kn, const int BF16, const int NRB, const int NMB,
                                                        float out[NR][MB]) {
    const int step = BF16 ? 16 : 8;
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[NR][MB];
#pragma GCC unroll 4
    for (int r = 0; r < NRB; r++)
#pragma GCC unroll 3
        for (int m = 0; m < NMB; m++) acc[r][m] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kn; k += step) {
        if ((k & (BF16 ? 31 : 15)) == 0) {  /* one prefetch per 64-byte line of each row */
#pragma GCC unroll 4
            for (int r = 0; r < NRB; r++)
                _mm_prefetch(BF16 ? (const char *)((const uint16_t *)w + (r + PF) * ldw + k)
                                  : (const char *)((const float *)w + (r + PF) * ldw + k), _MM_HINT_T0);
        }
        __m256 xv[MB], xo[MB];
#pragma GCC unroll 3
        for (int m = 0; m < NMB; m++) {
            xv[m] = _mm256_loadu_ps(x + m * ldx + k);
            if (BF16) xo[m] = _mm256_loadu_ps(x + m * ldx + k + 8);
        }
#pragma GCC unroll 4
        for (int r = 0; r < NRB; r++) {
            if (BF16) {
                const __m256i pairs = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + r * ldw + k));
                const __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16));
                const __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(pairs, high));
#pragma GCC unroll 3
                for (int m = 0; m < NMB; m++)
                    acc[r][m] = _mm256_fmadd_ps(odd, xo[m], _mm256_fmadd_ps(even, xv[m], acc[r][m]));
            } else {
                const __m256 wv = _mm256_loadu_ps((const float *)w + r * ldw + k);
#pragma GCC unroll 3
                for (int m = 0; m < NMB; m++) acc[r][m] = _mm256_fmadd_ps(wv, xv[m], acc[r][m]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NRB; r++)
#pragma GCC unroll 3
        for (int m = 0; m < NMB; m++) out[r][m] = hsum(acc[r][m]);
}

#define MICRO_NM(BF16, NRB, nm, x, ldx, w, ldw, kn, out)                      \
    do {                                                                         \
        if ((nm) == 2) micro(x, ldx, w, ldw, kn, BF16, NRB, 2, out);             \
        else micro(x, ldx, w, ldw, kn, BF16, NRB, 3, out);                       \
    } while (0)

static inline __attribute__((always_inline)) __m256 widen_lo(const void *w, int64_t k, const int BF16) {
    /* bf16: the even-indexed weights of the 16 at k; fp32: the 8 at k */
    if (BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k)), 16));
    return _mm256_loadu_ps((const float *)w + k);
}

static inline __attribute__((always_inline)) __m256 widen_hi(const void *w, int64_t k, const int BF16) {
    /* bf16: the odd-indexed weights of the 16 at k; fp32: the 8 at k + 8 */
    if (BF16) return _mm256_castsi256_ps(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k)),
                                                          _mm256_set1_epi32((int)0xffff0000u)));
    return _mm256_loadu_ps((const float *)w + k + 8);
}

/* One weight row against one row of x, the row read strictly in order with 4 independent partial sums: for a single
 * row of x this streams faster than the blocked micro kernel (~30 vs ~26 GB/s for bf16 on 2 threads), which wins
 * as soon as a weight vector is reused across rows of x. kn is a multiple of 16; BF16 as for `micro`. */
static inline __attribute__((always_inline)) float row_dot(const float *x, const void *w, int64_t kn, const int BF16) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= kn; k += 32) {
        a0 = _mm256_fmadd_ps(widen_lo(w, k, BF16), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(widen_hi(w, k, BF16), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(widen_lo(w, k + 16, BF16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(widen_hi(w, k + 16, BF16), _mm256_loadu_ps(x + k + 24), a3);
    }
    if (k < kn) {  /* a last 16 */
        a0 = _mm256_fmadd_ps(widen_lo(w, k, BF16), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(widen_hi(w, k, BF16), _mm256_loadu_ps(x + k + 8), a1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* out[r][m] for nr (1..NR) weight rows and nm (1..MB) rows of x: row_dot for one row of x, else the micro kernel */
static void micro_any(const float *x, int64_t ldx, int nm, const void *w, int w_bf16, int64_t ldw, int nr,
                      int64_t kn, float out[NR][MB]) {
    if (nm == 1) {
        for (int r = 0; r < nr; r++)
            out[r][0] = w_bf16 ? row_dot(x, (const uint16_t *)w + r * ldw, kn, 1)
                               : row_dot(x, (const float *)w + r * ldw, kn, 0);
        return;
    }
    if (nr == NR) {
        if (w_bf16) MICRO_NM(1, NR, nm, x, ldx, w, ldw, kn, out);
        else MICRO_NM(0, NR, nm, x, ldx, w, ldw, kn, out);
        return;
    }
    for (int r = 0; r < nr; r++) {  /* the last, partial block of weight rows */
        float one[NR][MB];
        if (w_bf16) MICRO_NM(1, 1, nm, x, ldx, (const uint16_t *)w + r * ldw, ldw, kn, one);
        else MICRO_NM(0, 1, nm, x, ldx, (const float *)w + r * ldw, ldw, kn, one);
        for (int m = 0; m < nm; m++) out[r][m] = one[0][m];
    }
}

/* rows n0 .. n0 + nr - 1 of y for all M rows of x. xk: x in the kernel's order (ldk), xf: x in natural order (ldx)
 * for the k tail beyond kv. */
static void column_block(const float *xk, int64_t ldk, const float *xf, int64_t ldx, int64_t M, int64_t K, int64_t kv,
                         const void *w, int w_bf16, int64_t ldw, int64_t n0, int nr, void *y, int y_bf16,
                         int64_t ldy) {
    const uint16_t *wb = (const uint16_t *)w + n0 * ldw;
    const float *wf = (const float *)w + n0 * ldw;
    float out[NR][MB];
    for (int64_t m0 = 0; m0 < M; m0 += MB) {
        /* one pass over k per block of MB rows of x: the NR weight rows (<= 32 KiB) stay in L1/L2 across passes */
        const int nm = M - m0 < MB ? (int)(M - m0) : MB;
        micro_any(xk + m0 * ldk, ldk, nm, w_bf16 ? (const void *)wb : (const void *)wf, w_bf16, ldw, nr, kv, out);
        for (int r = 0; r < nr; r++)
            for (int m = 0; m < nm; m++) {
                float s = out[r][m];
                for (int64_t k = kv; k < K; k++)  /* the k tail */
                    s += xf[(m0 + m) * ldx + k] * (w_bf16 ? bf16_to_f32(wb[r * ldw + k]) : wf[r * ldw + k]);
                const int64_t at = (m0 + m) * ldy + n0 + r;
                if (y_bf16) ((uint16_t *)y)[at] = f32_to_bf16(s);
                else ((float *)y)[at] = s;
            }
    }
}

/* y (M x N, row stride ldy) = x (M x K, row stride ldx) @ w (N x K, row stride ldw)^T. The *_bf16 flags say which
 * of x, w, y are bf16 (else fp32). Runs on `threads` OpenMP threads. Returns 0, or -1 when out of memory. */
int hy_linear(const void *x, int x_bf16, int64_t M, int64_t K, int64_t ldx, const void *w, int w_bf16, int64_t N,
              int64_t ldw, void *y, int y_bf16, int64_t ldy, int threads) {
    /* x once in fp32: natural order (xf, for the tail) and the kernel's order (xk) */
    const int64_t kv = K & ~(int64_t)15;  /* the vectorised part of k: whole chunks of 16 */
    float *buf = (float *)malloc((size_t)(2 * M * K + 1) * sizeof(float));
    if (!buf) return -1;
    float *xf = buf, *xk = buf + M * K;
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++)
            xf[m * K + k] = x_bf16 ? bf16_to_f32(((const uint16_t *)x)[m * ldx + k]) : ((const float *)x)[m * ldx + k];
    if (w_bf16) {
        for (int64_t m = 0; m < M; m++)
            for (int64_t c = 0; c < kv; c += 16)
                for (int i = 0; i < 8; i++) {
                    xk[m * K + c + i] = xf[m * K + c + 2 * i];
                    xk[m * K + c + 8 + i] = xf[m * K + c + 2 * i + 1];
                }
    } else {
        xk = xf;
    }
    const int64_t blocks = (N + NR - 1) / NR;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t n0 = b * NR;
        const int nr = N - n0 < NR ? (int)(N - n0) : NR;
        column_block(xk, K, xf, K, M, K, kv, w, w_bf16, ldw, n0, nr, y, y_bf16, ldy);
    }
    free(buf);
    return 0;
}
