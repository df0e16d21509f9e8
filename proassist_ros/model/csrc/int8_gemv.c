/* Weight-only int8 products for batch-1 decoding on CPU: y = (x W^T) * scale (+ bias).
 *
 * Why a kernel of our own (docs/performance.md "int8 kernel"): torch's packed int8 kernel
 * (aten::_weight_int8pack_mm) reaches ~7 GB/s of weights on one core here, far under the memory
 * bandwidth, and a reply token is ~200 such products. This one quantizes the activation row to
 * int16 (one scale per row: ~15 bits, finer than the bf16 the packed kernel takes), multiplies
 * with int16 pair dot products (AVX2 vpmaddwd: 16 multiply-adds per instruction) and prefetches
 * the weight rows it reads next, so it streams the int8 weights near the bandwidth.
 *
 * Layout: x (M, K) fp32 row-major; w (N, K) int8 row-major; scale (N,) fp32; bias (N,) fp32 or
 * NULL; y (M, N) fp32. Integer sums are flushed to fp32 every BLK input positions: a lane adds
 * BLK / 16 pair sums of at most 2 * 127 * 32767, which stays below 2^31.
 * Built at first use with the system C compiler (-O3 -march=native), see int8_kernel.py.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "row_pool.c"

#define BLK 1024       /* input positions per int32 accumulation */
#define ROWS 4         /* weight rows per block (one x chunk load serves four rows) */
#define PF_BLOCKS 8    /* prefetch the weight block this many blocks ahead */

static void quantize_row(const float *x, int64_t K, int16_t *xq, float *xs) {
  float mx = 0.f;
  for (int64_t k = 0; k < K; ++k) { float a = fabsf(x[k]); mx = a > mx ? a : mx; }
  float s = mx > 0.f ? mx / 32767.f : 1.f, inv = 1.f / s;
  for (int64_t k = 0; k < K; ++k) xq[k] = (int16_t)lrintf(x[k] * inv);
  *xs = s;
}

/* sum over k in [k0, k1) of w[k] * xq[k], exact in int32 (k1 - k0 <= BLK) */
static int32_t dot_scalar(const int8_t *w, const int16_t *xq, int64_t k0, int64_t k1) {
  int32_t acc = 0;
  for (int64_t k = k0; k < k1; ++k) acc += (int32_t)w[k] * (int32_t)xq[k];
  return acc;
}

#ifdef __AVX2__
static inline int32_t hsum(__m256i v) {
  __m128i a = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4e));
  a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xb1));
  return _mm_cvtsi128_si32(a);
}
#define MADD(acc, wrow, k, xv) \
  acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)((wrow) + (k)))), xv))
#endif

/* out[r] = sum_k w[r * K + k] * xq[k] for r < rows (rows <= ROWS) */
static void dot_rows(const int8_t *w, int64_t K, const int16_t *xq, float *out, int rows) {
  for (int r = 0; r < rows; ++r) out[r] = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += BLK) {
    int64_t k1 = k0 + BLK < K ? k0 + BLK : K, kv = k0;
#ifdef __AVX2__
    if (rows == ROWS) {
      __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
      for (; kv + 16 <= k1; kv += 16) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + kv));
        MADD(a0, w, kv, xv);
        MADD(a1, w + K, kv, xv);
        MADD(a2, w + 2 * K, kv, xv);
        MADD(a3, w + 3 * K, kv, xv);
      }
      out[0] += (float)hsum(a0); out[1] += (float)hsum(a1);
      out[2] += (float)hsum(a2); out[3] += (float)hsum(a3);
    }
#endif
    for (int r = 0; r < rows; ++r) out[r] += (float)dot_scalar(w + r * K, xq, kv, k1);
  }
}

/* y (M, N) = (xq (M, K) * xs (M,)) w^T * scale + bias for the weight rows [n0, n1), the activation
 * rows already quantized; each block of ROWS weight rows is read once for all M rows. */
static void int8_rows_range(const int16_t *xq, const float *xs, int64_t M, int64_t K, const int8_t *w, int64_t N,
                            const float *scale, const float *bias, float *y, int64_t n0, int64_t n1) {
  float o[ROWS];
  for (int64_t n = n0; n < n1; n += ROWS) {
    int rows = n1 - n < ROWS ? (int)(n1 - n) : ROWS;
#ifdef __AVX2__
    if (n + ROWS * (PF_BLOCKS + 1) <= N)
      for (int64_t off = 0; off < ROWS * K; off += 64)
        _mm_prefetch((const char *)(w + (n + ROWS * PF_BLOCKS) * K + off), _MM_HINT_T0);
#endif
    for (int64_t m = 0; m < M; ++m) {
      dot_rows(w + n * K, K, xq + m * K, o, rows);
      for (int r = 0; r < rows; ++r)
        y[m * N + n + r] = o[r] * xs[m] * scale[n + r] + (bias ? bias[n + r] : 0.f);
    }
  }
}

typedef struct {
  const int16_t *xq; const float *xs; int64_t M, K; const int8_t *w; int64_t N;
  const float *scale, *bias; float *y; int64_t per;
} rows_job;

static void rows_block(void *arg, int64_t b) {
  const rows_job *j = (const rows_job *)arg;
  int64_t n0 = b * j->per, n1 = n0 + j->per < j->N ? n0 + j->per : j->N;
  int8_rows_range(j->xq, j->xs, j->M, j->K, j->w, j->N, j->scale, j->bias, j->y, n0, n1);
}

/* The whole product, its weight rows shared out among the threads (row_pool.c) in blocks of at
 * least 64 KB of weights and about 8 per thread (each claim moves a cache line between cores);
 * every row is computed as with one thread. */
static void int8_rows(const int16_t *xq, const float *xs, int64_t M, int64_t K, const int8_t *w, int64_t N,
                      const float *scale, const float *bias, float *y) {
  int64_t per = 65536 / (K > 0 ? K : 1), even = (N + 8 * pool_threads() - 1) / (8 * pool_threads());
  per = ((per > even ? per : even) + ROWS - 1) / ROWS * ROWS;
  rows_job j = {xq, xs, M, K, w, N, scale, bias, y, per};
  pool_run(rows_block, &j, (N + j.per - 1) / j.per);
}

/* Returns 0 on success, 1 when the scratch buffer cannot be allocated. */
int proassist_int8_linear(const float *x, int64_t M, int64_t K, const int8_t *w, int64_t N,
                          const float *scale, const float *bias, float *y) {
  int16_t *xq = (int16_t *)malloc(sizeof(int16_t) * (size_t)(M * K + 16));
  float *xs = (float *)malloc(sizeof(float) * (size_t)(M > 0 ? M : 1));
  if (!xq || !xs) { free(xq); free(xs); return 1; }
  for (int64_t m = 0; m < M; ++m) quantize_row(x + m * K, K, xq + m * K, xs + m);
  int8_rows(xq, xs, M, K, w, N, scale, bias, y);
  free(xq); free(xs);
  return 0;
}
