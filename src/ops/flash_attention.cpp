// Flash attention: online softmax over dequantized key tiles, partial softmaxes per chunk.
#include "ops/flash_attention.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/dot.h"
#include "ops/kv_rows.h"
#include "util/check.h"
#include "util/thread_pool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace nibble {
namespace {

static_assert(kFlashChunk % kFlashTile == 0, "a chunk is a whole number of tiles");

// The two inner loops of a tile, for one query: scores s[j] = q.k_j * scale and the weighted
// sum acc += sum_j e[j] v_j. Portable versions over ops/dot.h; AVX2+FMA versions that compute
// every key's dot the same way (so grouping keys four at a time changes no bit) and keep the
// accumulator in registers across keys. Chosen once per process.
void scores_generic(const float* q, const float* const* k, int64_t n, int64_t d, float scale,
                    float* s) {
  for (int64_t j = 0; j < n; ++j) s[j] = dot_f32(q, k[j], d) * scale;
}
void weighted_sum_generic(const float* e, const float* const* v, int64_t n, int64_t d, float* acc) {
  for (int64_t j = 0; j < n; ++j) axpy_f32(e[j], v[j], acc, d);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NIBBLE_FLASH_X86 1
__attribute__((target("avx2,fma"))) inline float hsum8(__m256 x) {
  const __m128 lo = _mm256_castps256_ps128(x), hi = _mm256_extractf128_ps(x, 1);
  __m128 v = _mm_add_ps(lo, hi);
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
// d: a multiple of 8. Each key: one 8-lane FMA chain over d, then hsum8.
__attribute__((target("avx2,fma"))) void scores_avx2(const float* q, const float* const* k,
                                                     int64_t n, int64_t d, float scale, float* s) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < d; i += 8) {
      const __m256 x = _mm256_loadu_ps(q + i);
      a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k[j] + i), a0);
      a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k[j + 1] + i), a1);
      a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k[j + 2] + i), a2);
      a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k[j + 3] + i), a3);
    }
    s[j] = hsum8(a0) * scale;
    s[j + 1] = hsum8(a1) * scale;
    s[j + 2] = hsum8(a2) * scale;
    s[j + 3] = hsum8(a3) * scale;
  }
  for (; j < n; ++j) {
    __m256 a = _mm256_setzero_ps();
    for (int64_t i = 0; i < d; i += 8) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k[j] + i), a);
    }
    s[j] = hsum8(a) * scale;
  }
}
// d: a multiple of 8. Per element: acc, then + e[0] v_0, + e[1] v_1, ... (fused), in key order.
__attribute__((target("avx2,fma"))) void weighted_sum_avx2(const float* e, const float* const* v,
                                                           int64_t n, int64_t d, float* acc) {
  int64_t i = 0;
  for (; i + 32 <= d; i += 32) {
    __m256 a0 = _mm256_loadu_ps(acc + i), a1 = _mm256_loadu_ps(acc + i + 8);
    __m256 a2 = _mm256_loadu_ps(acc + i + 16), a3 = _mm256_loadu_ps(acc + i + 24);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 w = _mm256_set1_ps(e[j]);
      const float* x = v[j] + i;
      a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x), a0);
      a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8), a1);
      a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 16), a2);
      a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 24), a3);
    }
    _mm256_storeu_ps(acc + i, a0);
    _mm256_storeu_ps(acc + i + 8, a1);
    _mm256_storeu_ps(acc + i + 16, a2);
    _mm256_storeu_ps(acc + i + 24, a3);
  }
  for (; i < d; i += 8) {
    __m256 a = _mm256_loadu_ps(acc + i);
    for (int64_t j = 0; j < n; ++j) {
      a = _mm256_fmadd_ps(_mm256_set1_ps(e[j]), _mm256_loadu_ps(v[j] + i), a);
    }
    _mm256_storeu_ps(acc + i, a);
  }
}
// Two queries against the same keys: each (query, key) dot exactly as in scores_avx2.
__attribute__((target("avx2,fma"))) void scores2_avx2(const float* q0, const float* q1,
                                                      const float* const* k, int64_t n, int64_t d,
                                                      float scale, float* s0, float* s1) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int64_t i = 0; i < d; i += 8) {
      const __m256 x = _mm256_loadu_ps(q0 + i), y = _mm256_loadu_ps(q1 + i);
      const __m256 k0 = _mm256_loadu_ps(k[j] + i), k1 = _mm256_loadu_ps(k[j + 1] + i);
      const __m256 k2 = _mm256_loadu_ps(k[j + 2] + i), k3 = _mm256_loadu_ps(k[j + 3] + i);
      a0 = _mm256_fmadd_ps(x, k0, a0);
      a1 = _mm256_fmadd_ps(x, k1, a1);
      a2 = _mm256_fmadd_ps(x, k2, a2);
      a3 = _mm256_fmadd_ps(x, k3, a3);
      b0 = _mm256_fmadd_ps(y, k0, b0);
      b1 = _mm256_fmadd_ps(y, k1, b1);
      b2 = _mm256_fmadd_ps(y, k2, b2);
      b3 = _mm256_fmadd_ps(y, k3, b3);
    }
    s0[j] = hsum8(a0) * scale;
    s0[j + 1] = hsum8(a1) * scale;
    s0[j + 2] = hsum8(a2) * scale;
    s0[j + 3] = hsum8(a3) * scale;
    s1[j] = hsum8(b0) * scale;
    s1[j + 1] = hsum8(b1) * scale;
    s1[j + 2] = hsum8(b2) * scale;
    s1[j + 3] = hsum8(b3) * scale;
  }
  if (j < n) {
    scores_avx2(q0, k + j, n - j, d, scale, s0 + j);
    scores_avx2(q1, k + j, n - j, d, scale, s1 + j);
  }
}
// Two accumulators against the same V rows: each exactly as in weighted_sum_avx2.
__attribute__((target("avx2,fma"))) void weighted_sum2_avx2(const float* e0, const float* e1,
                                                            const float* const* v, int64_t n,
                                                            int64_t d, float* acc0, float* acc1) {
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    __m256 a0 = _mm256_loadu_ps(acc0 + i), a1 = _mm256_loadu_ps(acc0 + i + 8);
    __m256 b0 = _mm256_loadu_ps(acc1 + i), b1 = _mm256_loadu_ps(acc1 + i + 8);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 w0 = _mm256_set1_ps(e0[j]), w1 = _mm256_set1_ps(e1[j]);
      const __m256 x0 = _mm256_loadu_ps(v[j] + i), x1 = _mm256_loadu_ps(v[j] + i + 8);
      a0 = _mm256_fmadd_ps(w0, x0, a0);
      a1 = _mm256_fmadd_ps(w0, x1, a1);
      b0 = _mm256_fmadd_ps(w1, x0, b0);
      b1 = _mm256_fmadd_ps(w1, x1, b1);
    }
    _mm256_storeu_ps(acc0 + i, a0);
    _mm256_storeu_ps(acc0 + i + 8, a1);
    _mm256_storeu_ps(acc1 + i, b0);
    _mm256_storeu_ps(acc1 + i + 8, b1);
  }
  for (; i < d; i += 8) {
    __m256 a = _mm256_loadu_ps(acc0 + i), b = _mm256_loadu_ps(acc1 + i);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 x = _mm256_loadu_ps(v[j] + i);
      a = _mm256_fmadd_ps(_mm256_set1_ps(e0[j]), x, a);
      b = _mm256_fmadd_ps(_mm256_set1_ps(e1[j]), x, b);
    }
    _mm256_storeu_ps(acc0 + i, a);
    _mm256_storeu_ps(acc1 + i, b);
  }
}
const bool kHaveAvx2Fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif

// The softmax state of one query: [m (running max), l (sum of exp), acc[d] (weighted V sum)].
// l == 0 means no key seen yet.
struct Job {
  const KvView* kv;
  const float* q;
  float* out;
  int64_t n_tokens, n_head, pos0, window, group, d, stride, bt, n_tb;
  int64_t n_hs = 1;  // items per (KV head, token block): its query heads split in n_hs parts
  float scale;
  bool direct;  // f32 cache: rows are read in place
  bool simd;    // AVX2+FMA inner loops (d a multiple of 8)

  int64_t lo(int64_t t) const {
    const int64_t p = pos0 + t;
    return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
  }
  int64_t hi(int64_t t) const { return pos0 + t; }
  int64_t t_begin(int64_t tb) const { return tb * bt; }
  int64_t t_end(int64_t tb) const { return std::min(n_tokens, (tb + 1) * bt); }
  int64_t chunk_first(int64_t tb) const { return lo(t_begin(tb)) / kFlashChunk; }
  int64_t chunk_last(int64_t tb) const { return hi(t_end(tb) - 1) / kFlashChunk; }
  int64_t n_states(int64_t tb) const { return (t_end(tb) - t_begin(tb)) * group; }

  void clear(float* states, int64_t n) const {
    std::memset(states, 0, static_cast<size_t>(n * stride) * sizeof(float));
    for (int64_t i = 0; i < n; ++i) states[i * stride] = -INFINITY;
  }

  // Partial softmax of the keys of chunk c for the queries of token block tb, KV head g (its
  // query heads h0..h1-1; the other heads' states stay cleared).
  void run_chunk(int64_t g, int64_t tb, int64_t c, float* states, int64_t h0 = 0,
                 int64_t h1 = -1) const {
    if (h1 < 0) h1 = group;
    thread_local std::vector<float> kt, vt, krt, vrt;
    const float* kp[kFlashTile];
    const float* vp[kFlashTile];
    const float* kr[kFlashTile];  // f16 ring rows (recent keys), decoded
    const float* vr[kFlashTile];
    const float* kq[kFlashTile];  // one query's choice per key: ring or quantized row
    const float* vq[kFlashTile];
    float s[kFlashTile], s2[kFlashTile];
    if (!direct && kt.size() < static_cast<size_t>(kFlashTile * d)) {
      kt.resize(static_cast<size_t>(kFlashTile * d));
      vt.resize(static_cast<size_t>(kFlashTile * d));
    }
    const int64_t n_recent = kv->n_recent;
    if (n_recent > 0 && krt.size() < static_cast<size_t>(kFlashTile * d)) {
      krt.resize(static_cast<size_t>(kFlashTile * d));
      vrt.resize(static_cast<size_t>(kFlashTile * d));
    }
    const int64_t t0 = t_begin(tb), t1 = t_end(tb);
    clear(states, n_states(tb));
    const int64_t c_lo = c * kFlashChunk;
    const int64_t key_lo = std::max(c_lo, lo(t0));
    const int64_t key_hi = std::min(c_lo + kFlashChunk - 1, hi(t1 - 1));
    // Keys some query of the block reads from the f16 ring: s > hi(t0) - n_recent; keys some
    // query reads quantized: s <= hi(t1 - 1) - n_recent. Tiles near the diagonal can hold both.
    const int64_t recent_from = n_recent > 0 ? hi(t0) - n_recent + 1 : INT64_MAX;
    const int64_t quant_to = n_recent > 0 ? hi(t1 - 1) - n_recent : INT64_MAX;
    for (int64_t ts = c_lo; ts < c_lo + kFlashChunk; ts += kFlashTile) {
      const int64_t a = std::max(ts, key_lo), b = std::min(ts + kFlashTile - 1, key_hi);
      if (a > b) continue;
      for (int64_t p = a; p <= std::min(b, quant_to); ++p) {
        const int64_t j = p - ts;
        if (direct) {
          kp[j] = reinterpret_cast<const float*>(kv->k_head(p, g));
          vp[j] = reinterpret_cast<const float*>(kv->v_head(p, g));
        } else {
          kv_decode_row(kv->type, kv->k_head(p, g), kt.data() + j * d, d);
          kv_decode_row(kv->type, kv->v_head(p, g), vt.data() + j * d, d);
          kp[j] = kt.data() + j * d;
          vp[j] = vt.data() + j * d;
        }
      }
      const bool mixed = b >= recent_from;  // some query reads some key of this tile at f16
      for (int64_t p = std::max(a, recent_from); p <= b; ++p) {
        const int64_t j = p - ts;
        kv_decode_row(GgmlType::F16, kv->rk_head(p, g), krt.data() + j * d, d);
        kv_decode_row(GgmlType::F16, kv->rv_head(p, g), vrt.data() + j * d, d);
        kr[j] = krt.data() + j * d;
        vr[j] = vrt.data() + j * d;
      }
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t ra = std::max(ts, lo(t)) - ts, rb = std::min(ts + kFlashTile - 1, hi(t)) - ts;
        if (ra > rb) continue;
        const int64_t nk = rb - ra + 1;
        const float* const* kpt = kp;
        const float* const* vpt = vp;
        if (mixed) {  // this query's rows: the ring for its last n_recent keys
          for (int64_t j = ra; j <= rb; ++j) {
            const bool r = kv->use_recent(hi(t), ts + j);
            kq[j] = r ? kr[j] : kp[j];
            vq[j] = r ? vr[j] : vp[j];
          }
          kpt = kq;
          vpt = vq;
        }
        for (int64_t hh = h0; hh < h1;) {
          // Two query heads at a time share the K and V loads (AVX2); the bits per query are
          // the same as one at a time.
          const int64_t nq = simd && hh + 1 < h1 ? 2 : 1;
          const float* qh[2];
          float* st[2];
          float* sc[2] = {s + ra, s2 + ra};
          for (int64_t u = 0; u < nq; ++u) {
            qh[u] = q + (t * n_head + g * group + hh + u) * d;
            st[u] = states + ((t - t0) * group + hh + u) * stride;
          }
#ifdef NIBBLE_FLASH_X86
          if (nq == 2) {
            scores2_avx2(qh[0], qh[1], kpt + ra, nk, d, scale, sc[0], sc[1]);
          } else if (simd) {
            scores_avx2(qh[0], kpt + ra, nk, d, scale, sc[0]);
          } else {
            scores_generic(qh[0], kpt + ra, nk, d, scale, sc[0]);
          }
#else
          scores_generic(qh[0], kpt + ra, nk, d, scale, sc[0]);
#endif
          for (int64_t u = 0; u < nq; ++u) {
            float* e = sc[u];
            float mx = -INFINITY;
            for (int64_t j = 0; j < nk; ++j) mx = e[j] > mx ? e[j] : mx;
            const float m_old = st[u][0];
            const float m_new = mx > m_old ? mx : m_old;
            if (m_new > m_old && st[u][1] != 0.0f) {
              const float corr = std::exp(m_old - m_new);
              st[u][1] *= corr;
              for (int64_t i = 0; i < d; ++i) st[u][2 + i] *= corr;
            }
            st[u][0] = m_new;
            for (int64_t j = 0; j < nk; ++j) {
              e[j] = std::exp(e[j] - m_new);
              st[u][1] += e[j];
            }
          }
#ifdef NIBBLE_FLASH_X86
          if (nq == 2) {
            weighted_sum2_avx2(sc[0], sc[1], vpt + ra, nk, d, st[0] + 2, st[1] + 2);
          } else if (simd) {
            weighted_sum_avx2(sc[0], vpt + ra, nk, d, st[0] + 2);
          } else {
            weighted_sum_generic(sc[0], vpt + ra, nk, d, st[0] + 2);
          }
#else
          weighted_sum_generic(sc[0], vpt + ra, nk, d, st[0] + 2);
#endif
          hh += nq;
        }
      }
    }
  }

  // total <- total (+) part, one query. The same operation in every split, so results agree.
  void merge(float* total, const float* part) const {
    if (part[1] == 0.0f) return;
    if (total[1] == 0.0f) {
      std::memcpy(total, part, static_cast<size_t>(stride) * sizeof(float));
      return;
    }
    const float m = part[0] > total[0] ? part[0] : total[0];
    const float a = std::exp(total[0] - m), b = std::exp(part[0] - m);
    total[0] = m;
    total[1] = total[1] * a + part[1] * b;
    for (int64_t i = 0; i < d; ++i) total[2 + i] = total[2 + i] * a + part[2 + i] * b;
  }

  void finish(int64_t g, int64_t tb, const float* totals, int64_t h0 = 0, int64_t h1 = -1) const {
    if (h1 < 0) h1 = group;
    const int64_t t0 = t_begin(tb), t1 = t_end(tb);
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t hh = h0; hh < h1; ++hh) {
        const float* st = totals + ((t - t0) * group + hh) * stride;
        float* oh = out + (t * n_head + g * group + hh) * d;
        const float inv = st[1] > 0.0f ? 1.0f / st[1] : 0.0f;
        for (int64_t i = 0; i < d; ++i) oh[i] = st[2 + i] * inv;
      }
    }
  }

  // One (KV head, token block, part of its query heads): all its chunks in order.
  void run_item(int64_t item) const {
    thread_local std::vector<float> total, part;
    const int64_t hs = item % n_hs, gt = item / n_hs;
    const int64_t g = gt / n_tb, tb = gt % n_tb;
    const int64_t h0 = hs * group / n_hs, h1 = (hs + 1) * group / n_hs;
    const size_t need = static_cast<size_t>(n_states(tb) * stride);
    if (total.size() < need) {
      total.resize(need);
      part.resize(need);
    }
    clear(total.data(), n_states(tb));
    for (int64_t c = chunk_first(tb); c <= chunk_last(tb); ++c) {
      run_chunk(g, tb, c, part.data(), h0, h1);
      for (int64_t i = 0; i < n_states(tb); ++i)
        merge(total.data() + i * stride, part.data() + i * stride);
    }
    finish(g, tb, total.data(), h0, h1);
  }
};

}  // namespace

void flash_attention(const KvView& kv, const float* q, float* out, int64_t n_tokens, int64_t n_head,
                     int64_t pos0, int64_t window, float scale, FlashSplit split_mode) {
  NIBBLE_CHECK(kv.n_head_kv > 0 && n_head % kv.n_head_kv == 0, "flash_attention: bad GQA group");
  if (n_tokens <= 0) return;
  Job job{};
  job.kv = &kv;
  job.q = q;
  job.out = out;
  job.n_tokens = n_tokens;
  job.n_head = n_head;
  job.pos0 = pos0;
  job.window = window;
  job.group = n_head / kv.n_head_kv;
  job.d = kv.head_dim;
  job.stride = kv.head_dim + 2;
  job.scale = scale;
  job.direct = kv.type == GgmlType::F32 && kv.n_recent == 0;
#ifdef NIBBLE_FLASH_X86
  job.simd = kHaveAvx2Fma && job.d % 8 == 0;
#else
  job.simd = false;
#endif
  const int64_t threads = pool_threads();
  // Token blocks of 8, smaller while that leaves threads idle.
  job.bt = 8;
  while (job.bt > 1 && kv.n_head_kv * ((n_tokens + job.bt - 1) / job.bt) < 2 * threads) job.bt /= 2;
  job.n_tb = (n_tokens + job.bt - 1) / job.bt;
  const int64_t n_items = kv.n_head_kv * job.n_tb;
  int64_t max_chunks = 1;
  for (int64_t tb = 0; tb < job.n_tb; ++tb) {
    max_chunks = std::max(max_chunks, job.chunk_last(tb) - job.chunk_first(tb) + 1);
  }
  // Work estimate (query-key pairs times head_dim): small cases run on the calling thread.
  const int64_t keys = window > 0 ? std::min(window, pos0 + n_tokens) : pos0 + n_tokens;
  const bool parallel = threads > 1 && n_tokens * n_head * keys * job.d >= (int64_t{1} << 18);
  const int64_t slot = job.bt * job.group * job.stride;  // floats of one (item, chunk) partial
  const bool fits = n_items * max_chunks * slot <= (int64_t{1} << 24);
  const bool split = split_mode == FlashSplit::kChunks
                         ? fits
                         : split_mode == FlashSplit::kAuto && parallel && n_items < threads &&
                               max_chunks > 1 && fits;
  if (!split) {
    // Too few (KV head, token block) items for the threads (decoding with one KV head and one
    // chunk): split each item's query heads, in even parts (pairs share their K/V loads; the
    // bits per head are the same).
    while (parallel && n_items * job.n_hs * 2 <= threads && job.group % (job.n_hs * 4) == 0) {
      job.n_hs *= 2;
    }
    const int64_t n_run = n_items * job.n_hs;
    if (parallel && n_run > 1) {
      parallel_for(n_run, [&job](int64_t i) { job.run_item(i); });
    } else {
      for (int64_t i = 0; i < n_run; ++i) job.run_item(i);
    }
    return;
  }
  // Split over chunks too: partial softmaxes into a buffer, merged in chunk order per item.
  thread_local std::vector<float> partials;
  if (partials.size() < static_cast<size_t>(n_items * max_chunks * slot)) {
    partials.resize(static_cast<size_t>(n_items * max_chunks * slot));
  }
  float* buf = partials.data();
  struct Split {
    const Job* job;
    float* buf;
    int64_t max_chunks, slot;
  } sp{&job, buf, max_chunks, slot};
  auto one_chunk = [&sp](int64_t w) {
    const Job& j = *sp.job;
    const int64_t item = w / sp.max_chunks, ci = w % sp.max_chunks;
    const int64_t g = item / j.n_tb, tb = item % j.n_tb;
    const int64_t c = j.chunk_first(tb) + ci;
    float* states = sp.buf + w * sp.slot;
    if (c > j.chunk_last(tb)) {
      j.clear(states, j.n_states(tb));
    } else {
      j.run_chunk(g, tb, c, states);
    }
  };
  if (parallel) {
    parallel_for(n_items * max_chunks, one_chunk);
  } else {
    for (int64_t w = 0; w < n_items * max_chunks; ++w) one_chunk(w);
  }
  for (int64_t item = 0; item < n_items; ++item) {
    const int64_t g = item / job.n_tb, tb = item % job.n_tb;
    float* total = buf + item * max_chunks * slot;  // chunk 0's partial becomes the total
    for (int64_t ci = 1; ci < max_chunks; ++ci) {
      const float* part = buf + (item * max_chunks + ci) * slot;
      for (int64_t i = 0; i < job.n_states(tb); ++i)
        job.merge(total + i * job.stride, part + i * job.stride);
    }
    job.finish(g, tb, total);
  }
}

}  // namespace nibble
