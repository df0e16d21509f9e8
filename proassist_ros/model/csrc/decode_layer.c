/* Short chunks (a reply token, a frame; one stream's or several wearers') through every Llama
 * decoder layer, int8 weights, in one call.
 *
 * Why (docs/performance.md "Fused decode"): after the int8 kernel, a reply token on CPU spent
 * about as long between the products as in them: per layer two RMSNorms, RoPE, the cache append,
 * SDPA over the cache, SiLU, residual adds, views and ~13 Python calls, each op a few µs. Here a
 * layer is the products and a few loops over 576 floats, and each query head's attention reads its
 * kv head's cached keys and values (grouped-query attention).
 *
 * The arithmetic is transformers' LlamaDecoderLayer at one position, in the same order:
 *   h = RMSNorm(x) * ln1;  q, k, v = h Wq, h Wk, h Wv;  RoPE(q, k) with the position's cos/sin;
 *   k, v appended to the cache at position n;  o = softmax(q K^T * scaling) V  (all n + 1 positions);
 *   x += o Wo;  h = RMSNorm(x) * ln2;  x += (silu(h Wg) * (h Wu)) Wd
 *   (M rows: each product's weights are read once for all rows; the rows of a stream's chunk sit at
 *   positions n .. n+T-1 of its cache, and row j attends to the n + j + 1 positions up to itself)
 * with each product as in proassist_int8_linear (int16 activation row, one scale per row). Sums
 * run in another order than torch's, so results agree to float rounding, not bit for bit
 * (test/test_model_streaming.py compares them).
 *
 * Built with int8_gemv.c as one translation unit (it is included below), see int8_kernel.py.
 */
#include <string.h>

#include "int8_gemv.c"

enum { WQ, WK, WV, WO, WG, WU, WD, N_PROJ };

typedef struct {
  const float *ln1, *ln2;        /* (D,) RMSNorm weights before attention and before the MLP */
  const int8_t *w[N_PROJ];       /* q (H*hd, D), k, v (Hkv*hd, D), o (D, H*hd), gate, up (I, D), down (D, I) */
  const float *s[N_PROJ];        /* their per-row scales */
} proassist_weights;

typedef struct {
  float *kbuf, *vbuf;            /* (Hkv, cap, hd) each: one stream's cache buffers of one layer */
  int64_t cap, n;                /* capacity and filled positions; the stream's chunk is written from n */
} proassist_kv;

static void rmsnorm(const float *x, const float *w, int64_t D, float eps, float *out) {
  double ss = 0.0;
  for (int64_t d = 0; d < D; ++d) ss += (double)x[d] * x[d];
  float r = 1.f / sqrtf((float)(ss / (double)D) + eps);
  for (int64_t d = 0; d < D; ++d) out[d] = w[d] * (x[d] * r);
}

/* transformers' apply_rotary_pos_emb on one head: x * cos + rotate_half(x) * sin */
static void rope(float *x, const float *cos, const float *sin, int64_t hd) {
  int64_t half = hd / 2;
  for (int64_t j = 0; j < half; ++j) {
    float a = x[j], b = x[j + half];
    x[j] = a * cos[j] - b * sin[j];
    x[j + half] = b * cos[j + half] + a * sin[j + half];
  }
}

#ifdef __AVX2__
/* e^x for x <= 0 (softmax after subtracting the max), 8 lanes: Cephes' expf (range reduction by
 * ln 2 in two parts, degree-5 polynomial, 2^n through the exponent bits); relative error ~1e-7. */
static inline __m256 exp_neg(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* out[j] = q . K[j] for 4 consecutive keys (hd % 8 == 0): four accumulators, one reduction */
static inline void dot4(const float *q, const float *K, int64_t hd, float *out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t c = 0; c < hd; c += 8) {
    __m256 qv = _mm256_loadu_ps(q + c);
    a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(K + c), a0);
    a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(K + hd + c), a1);
    a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(K + 2 * hd + c), a2);
    a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(K + 3 * hd + c), a3);
  }
  __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));  /* lanes: (0 1 2 3 | 0 1 2 3) */
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
#endif

static float dot(const float *a, const float *b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

/* Attention of query head hq of one position over L cached positions: q (H, hd) → o (H, hd).
 * Query heads g*rep .. g*rep+rep-1 share kv head g (transformers' repeat_kv). p: L floats of
 * scratch. */
static void attend_head(const float *q, const float *kbuf, const float *vbuf, int64_t cap, int64_t L, int64_t H,
                        int64_t Hkv, int64_t hd, int64_t hq, float scaling, float *p, float *o) {
  int64_t rep = H / Hkv;
  const float *K = kbuf + (hq / rep) * cap * hd, *V = vbuf + (hq / rep) * cap * hd, *qh = q + hq * hd;
  float *oh = o + hq * hd, mx = -INFINITY, sum = 0.f;
  int64_t l = 0;
#ifdef __AVX2__
  if (hd % 8 == 0)
    for (; l + 4 <= L; l += 4) dot4(qh, K + l * hd, hd, p + l);
#endif
  for (; l < L; ++l) p[l] = dot(qh, K + l * hd, hd);
  for (l = 0; l < L; ++l) { p[l] *= scaling; mx = p[l] > mx ? p[l] : mx; }
  l = 0;
#ifdef __AVX2__
  __m256 m8 = _mm256_set1_ps(mx), s8 = _mm256_setzero_ps();
  for (; l + 8 <= L; l += 8) {
    __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(p + l), m8));
    _mm256_storeu_ps(p + l, e);
    s8 = _mm256_add_ps(s8, e);
  }
  float part[8];
  _mm256_storeu_ps(part, s8);
  for (int j = 0; j < 8; ++j) sum += part[j];
#endif
  for (; l < L; ++l) { p[l] = expf(p[l] - mx); sum += p[l]; }
  float inv = 1.f / sum;
  for (int64_t d = 0; d < hd; ++d) oh[d] = 0.f;
  for (l = 0; l < L; ++l) {  /* vectorised by the compiler: no reduction across lanes */
    const float *vl = V + l * hd;
    float w = p[l] * inv;
    for (int64_t d = 0; d < hd; ++d) oh[d] += w * vl[d];
  }
}

/* One layer's attention for all M rows, one (row, query head) per block (row_pool.c): a row
 * sees its stream's cached positions and its chunk up to itself. */
typedef struct {
  const float *q; float *o, *p; const proassist_kv *kv; const int64_t *stream, *offset;
  int64_t layer, n_layers, H, Hkv, hd, maxL; float scaling;
} attend_job;

static void attend_block(void *arg, int64_t b) {
  const attend_job *j = (const attend_job *)arg;
  int64_t m = b / j->H, hq = b % j->H, qd = j->H * j->hd;
  const proassist_kv *cv = j->kv + j->stream[m] * j->n_layers + j->layer;
  attend_head(j->q + m * qd, cv->kbuf, cv->vbuf, cv->cap, cv->n + j->offset[m] + 1, j->H, j->Hkv, j->hd, hq,
              j->scaling, j->p + b * j->maxL, j->o + m * qd);
}

/* x (M, D): the chunks' embeddings in, their last hidden states (before the final norm) out.
 * S streams' chunks are packed along the rows: stream s owns the next rows[s] rows, which follow
 * its n cached positions, causal within the chunk; kv[s * n_layers + i] is its cache of layer i.
 * cos, sin (M, hd): the rows' rotary tables. Returns 0, or 1 when scratch cannot be allocated. */
int proassist_decode_rows(float *x, int64_t M, const proassist_weights *layers, int64_t n_layers,
                          const proassist_kv *kv, int64_t S, const int64_t *rows, int64_t D, int64_t H,
                          int64_t Hkv, int64_t hd, int64_t I, float eps, float scaling, const float *cos,
                          const float *sin) {
  int64_t maxL = 1, qd = H * hd, kd = Hkv * hd;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < n_layers; ++i)
      maxL = kv[s * n_layers + i].n + rows[s] > maxL ? kv[s * n_layers + i].n + rows[s] : maxL;
  int64_t widest = D > I ? D : I;
  widest = widest > qd ? widest : qd;
  float *f = (float *)malloc(sizeof(float) * (size_t)(M * (D + 2 * qd + 2 * kd + 2 * I + D + 1) + M * H * maxL));
  int16_t *xq = (int16_t *)malloc(sizeof(int16_t) * (size_t)(M * widest + 16));
  int64_t *stream = (int64_t *)malloc(sizeof(int64_t) * (size_t)(2 * M + 1)), *offset = stream + M;
  if (!f || !xq || !stream) { free(f); free(xq); free(stream); return 1; }
  for (int64_t s = 0, m = 0; s < S; ++s)
    for (int64_t j = 0; j < rows[s] && m < M; ++j, ++m) { stream[m] = s; offset[m] = j; }
  float *h = f, *q = h + M * D, *k = q + M * qd, *v = k + M * kd, *o = v + M * kd, *g = o + M * qd, *u = g + M * I,
        *y = u + M * I, *xs = y + M * D, *p = xs + M;
#define QUANTIZE(src, K) for (int64_t m = 0; m < M; ++m) quantize_row((src) + m * (K), K, xq + m * (K), xs + m)
  for (int64_t i = 0; i < n_layers; ++i) {
    const proassist_weights *ly = layers + i;
    for (int64_t m = 0; m < M; ++m) rmsnorm(x + m * D, ly->ln1, D, eps, h + m * D);
    QUANTIZE(h, D);  /* one quantized row serves q, k and v */
    int8_rows(xq, xs, M, D, ly->w[WQ], qd, ly->s[WQ], NULL, q);
    int8_rows(xq, xs, M, D, ly->w[WK], kd, ly->s[WK], NULL, k);
    int8_rows(xq, xs, M, D, ly->w[WV], kd, ly->s[WV], NULL, v);
    for (int64_t m = 0; m < M; ++m) {
      const float *c = cos + m * hd, *sn = sin + m * hd;
      const proassist_kv *cv = kv + stream[m] * n_layers + i;
      int64_t pos = cv->n + offset[m];
      for (int64_t hh = 0; hh < H; ++hh) rope(q + m * qd + hh * hd, c, sn, hd);
      for (int64_t hh = 0; hh < Hkv; ++hh) {
        rope(k + m * kd + hh * hd, c, sn, hd);
        memcpy(cv->kbuf + (hh * cv->cap + pos) * hd, k + m * kd + hh * hd, sizeof(float) * (size_t)hd);
        memcpy(cv->vbuf + (hh * cv->cap + pos) * hd, v + m * kd + hh * hd, sizeof(float) * (size_t)hd);
      }
    }
    attend_job aj = {q, o, p, kv, stream, offset, i, n_layers, H, Hkv, hd, maxL, scaling};
    pool_run(attend_block, &aj, M * H);
    QUANTIZE(o, qd);
    int8_rows(xq, xs, M, qd, ly->w[WO], D, ly->s[WO], NULL, y);
    for (int64_t j = 0; j < M * D; ++j) x[j] += y[j];
    for (int64_t m = 0; m < M; ++m) rmsnorm(x + m * D, ly->ln2, D, eps, h + m * D);
    QUANTIZE(h, D);  /* one quantized row serves gate and up */
    int8_rows(xq, xs, M, D, ly->w[WG], I, ly->s[WG], NULL, g);
    int8_rows(xq, xs, M, D, ly->w[WU], I, ly->s[WU], NULL, u);
    for (int64_t j = 0; j < M * I; ++j) g[j] = g[j] / (1.f + expf(-g[j])) * u[j];
    QUANTIZE(g, I);
    int8_rows(xq, xs, M, I, ly->w[WD], D, ly->s[WD], NULL, y);
    for (int64_t j = 0; j < M * D; ++j) x[j] += y[j];
  }
#undef QUANTIZE
  free(f); free(xq); free(stream);
  return 0;
}
