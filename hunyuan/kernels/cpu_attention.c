/*
 * Single-query attention over a KV cache for x86-64 CPUs with AVX2 + FMA: the attention of a decode step.
 *
 * For each batch row b and query head h (GQA: kv head h / G, G = H / Hkv):
 *     out[b, h] = softmax(scale * q[b, h] . K[b, h/G, t] over the keys t allowed by the mask) @ V[b, h/G]
 * in fp32 throughout (scores, softmax, weighted sum), with q, K, V, out each bf16 or fp32. This is what
 * scaled_dot_product_attention computes for one query, but PyTorch's CPU kernels only reach it in fp32 after a full
 * fp32 copy of the cache (bf16 SDPA is ~8x slower on AVX2 CPUs): here K and V are read once, in their own dtype,
 * and the G query heads that share a kv head share that read.
 *
 * Threads: OpenMP over (batch row, kv head) pairs, on PyTorch's libgomp (see cpu_linear.c).
 */
#include "hy_common.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUP 16   /* query heads per kv head handled in one pass */
#define MAX_DIM 512    /* head dim */

/* 8 values of a cache row at i, as fp32 */
static inline __m256 load8(const void *p, int64_t i, int bf16) {
    if (bf16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i))), 16));
    return _mm256_loadu_ps((const float *)p + i);
}

static inline float load1(const void *p, int64_t i, int bf16) {
    return bf16 ? bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* strides are in elements; the head dim is contiguous everywhere. mask: NULL or one byte per (b, t), nonzero = may
 * attend, row stride mask_sb. Returns 0, -1 for bad sizes, -2 when out of memory. */
int hy_decode_attention(const void *q, int q_bf16, int64_t q_sb, int64_t q_sh,
                        const void *k, const void *v, int kv_bf16, int64_t kv_sb, int64_t kv_sh, int64_t kv_st,
                        const uint8_t *mask, int64_t mask_sb,
                        int64_t B, int64_t H, int64_t Hkv, int64_t S, int64_t D, float scale,
                        void *out, int out_bf16, int64_t out_sb, int threads) {
    if (Hkv <= 0 || H % Hkv || H / Hkv > MAX_GROUP || D > MAX_DIM || S <= 0) return -1;
    const int64_t G = H / Hkv, dv = D & ~(int64_t)7;
    float *scores = (float *)malloc((size_t)(threads > 0 ? threads : 1) * G * S * sizeof(float));
    if (!scores) return -2;
    int failed = 0;
    #pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < Hkv; j++) {
            float *p = scores + (int64_t)omp_get_thread_num() * G * S;  /* G x S */
            float qf[MAX_GROUP][MAX_DIM] __attribute__((aligned(32)));
            float acc[MAX_GROUP][MAX_DIM] __attribute__((aligned(32)));
            const char *kb = (const char *)k, *vb = (const char *)v;
            const int64_t esz = kv_bf16 ? 2 : 4;
            const char *kh = kb + (b * kv_sb + j * kv_sh) * esz, *vh = vb + (b * kv_sb + j * kv_sh) * esz;
            for (int64_t g = 0; g < G; g++)
                for (int64_t i = 0; i < D; i++) qf[g][i] = load1(q, b * q_sb + (j * G + g) * q_sh + i, q_bf16) * scale;
            /* scores: one read of each key row for the G heads */
            float mx[MAX_GROUP];
            for (int64_t g = 0; g < G; g++) mx[g] = -INFINITY;
            for (int64_t t = 0; t < S; t++) {
                if (mask && !mask[b * mask_sb + t]) {
                    for (int64_t g = 0; g < G; g++) p[g * S + t] = -INFINITY;
                    continue;
                }
                const char *kt = kh + t * kv_st * esz;
                for (int64_t g = 0; g < G; g++) {
                    __m256 s = _mm256_setzero_ps();
                    for (int64_t i = 0; i < dv; i += 8) s = _mm256_fmadd_ps(load8(kt, i, kv_bf16), _mm256_load_ps(qf[g] + i), s);
                    float sc = hsum(s);
                    for (int64_t i = dv; i < D; i++) sc += load1(kt, i, kv_bf16) * qf[g][i];
                    p[g * S + t] = sc;
                    if (sc > mx[g]) mx[g] = sc;
                }
            }
            /* softmax numerators (the max is always finite: the caller guarantees one allowed key per row) */
            float den[MAX_GROUP];
            for (int64_t g = 0; g < G; g++) {
                float sum = 0.0f;
                if (mx[g] == -INFINITY) {  /* no key allowed: the call reports an error */
                    #pragma omp atomic write
                    failed = 1;
                    mx[g] = 0.0f;
                }
                for (int64_t t = 0; t < S; t++) {
                    const float e = expf(p[g * S + t] - mx[g]);
                    p[g * S + t] = e;
                    sum += e;
                }
                den[g] = sum;
                memset(acc[g], 0, D * sizeof(float));
            }
            /* weighted sum of the values: one read of each value row for the G heads */
            for (int64_t t = 0; t < S; t++) {
                if (mask && !mask[b * mask_sb + t]) continue;
                const char *vt = vh + t * kv_st * esz;
                for (int64_t i = 0; i < dv; i += 8) {
                    const __m256 vv = load8(vt, i, kv_bf16);
                    for (int64_t g = 0; g < G; g++)
                        _mm256_store_ps(acc[g] + i, _mm256_fmadd_ps(_mm256_set1_ps(p[g * S + t]), vv,
                                                                    _mm256_load_ps(acc[g] + i)));
                }
                for (int64_t i = dv; i < D; i++) {
                    const float vi = load1(vt, i, kv_bf16);
                    for (int64_t g = 0; g < G; g++) acc[g][i] += p[g * S + t] * vi;
                }
            }
            for (int64_t g = 0; g < G; g++) {
                const float inv = 1.0f / den[g];
                for (int64_t i = 0; i < D; i++) {
                    const float o = acc[g][i] * inv;
                    const int64_t at = b * out_sb + (j * G + g) * D + i;
                    if (out_bf16) ((uint16_t *)out)[at] = f32_to_bf16(o);
                    else ((float *)out)[at] = o;
                }
            }
        }
    }
    free(scores);
    return failed ? -1 : 0;
}
