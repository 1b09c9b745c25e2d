#include "backend/cpu/repack.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cpu/kernels.h"
#include "format/quant.h"

namespace corral {

bool repack_supported(const TensorView& w) {
  // A repacked weight is only ever read by these kernels (decode and prompt), so both must exist.
  const KernelTable& k = kernels_best();
  if (w.repacked || w.ne[1] % 8 != 0) return false;  // expert slices must hold whole groups
  if (w.type == DType::Q4_0) return w.ne[0] % 32 == 0 && k.gemv_q4_0x8 && k.gemm_q4_0x8x4;
  if (w.type == DType::Q8_0) return w.ne[0] % 32 == 0 && k.gemv_q8_0x8 && k.gemm_q8_0x8x4;
  if (w.type == DType::Q4_K)
    return w.ne[0] % QK_K == 0 && w.ne[2] == 1 && w.ne[3] == 1 && k.gemv_q4_kx8 && k.gemm_q4_kx8;
  if (w.type == DType::Q6_K)
    return w.ne[0] % QK_K == 0 && w.ne[1] % 16 == 0 && w.ne[2] == 1 && w.ne[3] == 1 && k.pair_q6_k[0] &&
           k.pair_q6_k[1] && std::getenv("CORRAL_NO_REPACK_Q6_K") == nullptr;
  if (repacked_by_column(w.type))
    return w.ne[2] == 1 && w.ne[3] == 1 && k.gemv16[uint32_t(w.type)] &&
           k.unpack16[uint32_t(w.type)] && std::getenv("CORRAL_NO_REPACK_F16") == nullptr;
  return false;
}

size_t repacked_group_bytes(DType t, int64_t K) {
  if (t == DType::Q4_K) return size_t(K / QK_K) * kQ4KGroupBytes;
  if (t == DType::Q6_K) return size_t(K / QK_K) * kQ6KGroupBytes;
  if (t == DType::F16 || t == DType::BF16) return size_t(K) * 16;
  if (t == DType::F32) return size_t(K) * 32;
  return size_t(K / 32) * (t == DType::Q8_0 ? kQ8_0GroupBytes : kQ4_0GroupBytes);
}

size_t repacked_bytes(const TensorView& w) {
  return size_t(w.rows() / 8) * repacked_group_bytes(w.type, w.ne[0]);
}

namespace {

void for_each_group(ThreadPool* pool, int64_t n, const std::function<void(int64_t)>& fn) {
  if (pool) {
    pool->parallel_for(n, fn);
  } else {
    for (int64_t g = 0; g < n; ++g) fn(g);
  }
}

}  // namespace

void repack_q4_k(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  const int64_t K = w.ne[0], nsb = K / QK_K, rows = w.rows();
  auto group = [&](int64_t g) {
    for (int64_t s = 0; s < nsb; ++s) {
      uint8_t* o = dst + size_t(g * nsb + s) * kQ4KGroupBytes;
      for (int i = 0; i < 8; ++i) {
        const auto* b = reinterpret_cast<const BlockQ4_K*>(w.row(g * 8 + i)) + s;
        std::memcpy(o + 2 * i, &b->d, 2);
        std::memcpy(o + 16 + 2 * i, &b->dmin, 2);
        for (int sub = 0; sub < 8; ++sub)
          get_scale_min_k4(sub, b->scales, o + 32 + sub * 8 + i, o + 96 + sub * 8 + i);
        for (int j = 0; j < 4; ++j)
          for (int c = 0; c < 8; ++c)
            std::memcpy(o + 160 + j * 256 + c * 32 + 4 * i, b->qs + 32 * j + 4 * c, 4);
      }
    }
  };
  for_each_group(pool, rows / 8, group);
}

namespace {
// Value l (0..255) of a Q6_K block as its 6-bit level q (the value is q - 32).
uint8_t q6_level(const BlockQ6_K& b, int l) {
  const int h = l / 128, l2 = l % 128, grp = l2 / 32, i = l2 % 32;
  const int lo = (b.ql[64 * h + 32 * (grp & 1) + i] >> (4 * (grp >> 1))) & 0xF;
  const int hi = (b.qh[32 * h + i] >> (2 * grp)) & 3;
  return uint8_t(lo | (hi << 4));
}
void set_q6_level(BlockQ6_K& b, int l, uint8_t q) {
  const int h = l / 128, l2 = l % 128, grp = l2 / 32, i = l2 % 32;
  b.ql[64 * h + 32 * (grp & 1) + i] |= uint8_t((q & 0xF) << (4 * (grp >> 1)));
  b.qh[32 * h + i] |= uint8_t((q >> 4) << (2 * grp));
}
}  // namespace

void repack_q6_k(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  const int64_t K = w.ne[0], nsb = K / QK_K, rows = w.rows();
  for_each_group(pool, rows / 8, [&](int64_t g) {
    for (int64_t s = 0; s < nsb; ++s) {
      uint8_t* o = dst + size_t(g * nsb + s) * kQ6KGroupBytes;
      std::memset(o, 0, kQ6KGroupBytes);
      for (int i = 0; i < 8; ++i) {
        const auto& b = reinterpret_cast<const BlockQ6_K*>(w.row(g * 8 + i))[s];
        std::memcpy(o + 2 * i, &b.d, 2);
        for (int j = 0; j < 16; ++j) {
          o[16 + 8 * j + i] = uint8_t(b.scales[j]);
          uint8_t* c = o + 144 + 96 * j;
          for (int v = 0; v < 16; ++v) {
            const uint8_t q = q6_level(b, 16 * j + v);
            const int part = v / 8, nib = (v % 8) / 4, bb = v % 4, m = v / 4;
            c[32 * part + 4 * i + bb] |= uint8_t((q & 0xF) << (4 * nib));
            c[64 + 4 * i + bb] |= uint8_t((q >> 4) << (2 * m));
          }
        }
      }
    }
  });
}

void repacked_q6_k_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out) {
  const int64_t nsb = K / QK_K, g = r / 8, i = r % 8;
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* in = data + size_t(g * nsb + s) * kQ6KGroupBytes;
    auto& b = reinterpret_cast<BlockQ6_K*>(out)[s];
    std::memset(&b, 0, sizeof(b));
    std::memcpy(&b.d, in + 2 * i, 2);
    for (int j = 0; j < 16; ++j) {
      b.scales[j] = int8_t(in[16 + 8 * j + i]);
      const uint8_t* c = in + 144 + 96 * j;
      for (int v = 0; v < 16; ++v) {
        const int part = v / 8, nib = (v % 8) / 4, bb = v % 4, m = v / 4;
        const uint8_t q = uint8_t(((c[32 * part + 4 * i + bb] >> (4 * nib)) & 0xF) | (((c[64 + 4 * i + bb] >> (2 * m)) & 3) << 4));
        set_q6_level(b, 16 * j + v, q);
      }
    }
  }
}

void repacked_q4_k_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out) {
  const int64_t nsb = K / QK_K, g = r / 8, i = r % 8;
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* in = data + size_t(g * nsb + s) * kQ4KGroupBytes;
    auto* b = reinterpret_cast<BlockQ4_K*>(out) + s;
    std::memcpy(&b->d, in + 2 * i, 2);
    std::memcpy(&b->dmin, in + 16 + 2 * i, 2);
    std::memset(b->scales, 0, 12);
    for (int j = 0; j < 8; ++j) {  // 6-bit scale/min packing of the Q4_K block
      const uint8_t ls = in[32 + j * 8 + i], lm = in[96 + j * 8 + i];
      if (j < 4) {
        b->scales[j] |= ls;
        b->scales[j + 4] |= lm;
      } else {
        b->scales[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
        b->scales[j - 4] |= uint8_t((ls >> 4) << 6);
        b->scales[j] |= uint8_t((lm >> 4) << 6);
      }
    }
    for (int j = 0; j < 4; ++j)
      for (int c = 0; c < 8; ++c)
        std::memcpy(b->qs + 32 * j + 4 * c, in + 160 + j * 256 + c * 32 + 4 * i, 4);
  }
}

namespace {

// Q4_0 and Q8_0 share the 8-row grouping: a block is an fp16 scale then qs_bytes of levels
// (16 or 32); per group and block, 8 scales then qs_bytes / 4 chunks of 32 bytes, chunk c
// holding row i's qs[4c .. 4c+3] at [4i .. 4i+3].
void repack_x8(const TensorView& w, uint8_t* dst, ThreadPool* pool, int qs_bytes) {
  const int64_t nb = w.ne[0] / 32;
  const size_t blk = size_t(2 + qs_bytes), gbytes = 8 * blk;
  for_each_group(pool, w.rows() / 8, [&](int64_t g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* o = dst + size_t(g * nb + b) * gbytes;
      for (int i = 0; i < 8; ++i) {
        const uint8_t* in = w.row(g * 8 + i) + size_t(b) * blk;
        std::memcpy(o + 2 * i, in, 2);
        for (int c = 0; c < qs_bytes / 4; ++c)
          std::memcpy(o + 16 + 32 * c + 4 * i, in + 2 + 4 * c, 4);
      }
    }
  });
}

void unpack_x8_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out, int qs_bytes) {
  const int64_t nb = K / 32, g = r / 8, i = r % 8;
  const size_t blk = size_t(2 + qs_bytes), gbytes = 8 * blk;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* in = data + size_t(g * nb + b) * gbytes;
    uint8_t* o = out + size_t(b) * blk;
    std::memcpy(o, in + 2 * i, 2);
    for (int c = 0; c < qs_bytes / 4; ++c) std::memcpy(o + 2 + 4 * c, in + 16 + 32 * c + 4 * i, 4);
  }
}

}  // namespace

void repack_q4_0x8(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  repack_x8(w, dst, pool, 16);
}
void repack_q8_0x8(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  repack_x8(w, dst, pool, 32);
}

void repacked_q4_0_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out) {
  unpack_x8_row(data, K, r, out, 16);
}
void repacked_q8_0_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out) {
  unpack_x8_row(data, K, r, out, 32);
}

namespace {
// T: the element's bits (uint16_t for F16/BF16, uint32_t for F32).
template <class T>
void repack_columns_x8(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  const int64_t K = w.ne[0];
  for_each_group(pool, w.rows() / 8, [&](int64_t g) {
    auto* o = reinterpret_cast<T*>(dst + size_t(g) * size_t(K) * 8 * sizeof(T));
    const T* in[8];
    for (int i = 0; i < 8; ++i) in[i] = reinterpret_cast<const T*>(w.row(g * 8 + i));
    // Written in order (eight read streams, one write stream).
    for (int64_t k = 0; k < K; ++k, o += 8)
      for (int i = 0; i < 8; ++i) o[i] = in[i][k];
  });
}
}  // namespace

bool bf16_tile_layout(DType t, int64_t K) {
  // On the AMX table by default (CORRAL_AMX_BF16=0 turns it off): on the 1B shape pp128 2x and
  // pp512 1.4-1.5x, decode even. Every BF16 matmul then goes through the tiles, since no vector
  // code can take any of them over bitwise (measured: the tile's accumulation is not a chain of
  // fused multiply-adds in either order, nor pairs summed first). Read per call (tests switch it
  // around one model); a weight's layout is fixed when it is repacked.
  if (t != DType::BF16 || K % 32 != 0 || kernels_best().amx_bf16 == nullptr) return false;
  const char* e = std::getenv("CORRAL_AMX_BF16");
  return !(e && std::string(e) == "0");
}

namespace {
void repack_bf16_tiles(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  const int64_t K = w.ne[0], groups = w.rows() / 8, pairs = groups / 2;
  const size_t pair_bytes = size_t(K) * 16 * 2;
  for_each_group(pool, pairs, [&](int64_t p) {
    uint8_t* o = dst + size_t(p) * pair_bytes;
    // Values k and k + 1 (k even) of a row are 4 bytes both in the row and in its tile slot.
    for (int n = 0; n < 16; ++n) {
      const uint8_t* in = static_cast<const uint8_t*>(w.row(p * 16 + n));
      for (int64_t c = 0; c < K / 32; ++c)
        for (int q = 0; q < 16; ++q)
          std::memcpy(o + c * 1024 + q * 64 + n * 4, in + c * 64 + q * 4, 4);
    }
  });
  if (groups % 2) {  // the odd last group: column layout
    TensorView last = w;
    last.data = w.row(pairs * 16);
    last.ne = {K, 8, 1, 1};
    last.n_dims = 2;
    repack_columns_x8<uint16_t>(last, dst + size_t(pairs) * pair_bytes, nullptr);
  }
}
}  // namespace

void repack_16bit_x8(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  if (bf16_tile_layout(w.type, w.ne[0])) return repack_bf16_tiles(w, dst, pool);
  if (w.type == DType::F32)
    repack_columns_x8<uint32_t>(w, dst, pool);
  else
    repack_columns_x8<uint16_t>(w, dst, pool);
}

namespace {
template <class T>
void repacked_column_row(const uint8_t* data, int64_t K, int64_t r, T* out) {
  const auto* in = reinterpret_cast<const T*>(data + size_t(r / 8) * size_t(K) * 8 * sizeof(T));
  for (int64_t k = 0; k < K; ++k) out[k] = in[k * 8 + r % 8];
}
}  // namespace

void repacked_16bit_row(DType t, const uint8_t* data, int64_t K, int64_t n_rows, int64_t r,
                        uint16_t* out) {
  // Slices of kRepackSliceRows rows (a multiple of 16) are repacked one after another.
  const int64_t slice = r / kRepackSliceRows * kRepackSliceRows;
  data += size_t(slice) * size_t(K) * 2;
  r -= slice;
  n_rows = std::min(kRepackSliceRows, n_rows - slice);
  const int64_t pairs = n_rows / 16;
  if (!bf16_tile_layout(t, K) || r >= pairs * 16) return repacked_column_row(data, K, r, out);
  const uint8_t* p = data + size_t(r / 16) * size_t(K) * 32;
  const int n = int(r % 16);
  for (int64_t k = 0; k < K; ++k)
    std::memcpy(out + k, p + (k / 32) * 1024 + ((k % 32) / 2) * 64 + n * 4 + (k % 2) * 2, 2);
}

void repacked_f32_row(const uint8_t* data, int64_t K, int64_t r, float* out) {
  repacked_column_row(data, K, r, out);
}

void repack_weight(const TensorView& w, uint8_t* dst, ThreadPool* pool,
                   const std::function<void(const TensorView&)>& after_slice) {
  size_t out = 0;
  for (int64_t r0 = 0; r0 < w.rows(); r0 += kRepackSliceRows) {
    TensorView part = w;  // rows are contiguous across experts, so a slice is a 2-d view
    part.data = w.row(r0);
    part.ne = {w.ne[0], std::min(kRepackSliceRows, w.rows() - r0), 1, 1};
    part.n_dims = 2;
    if (w.type == DType::Q4_K)
      repack_q4_k(part, dst + out, pool);
    else if (w.type == DType::Q6_K)
      repack_q6_k(part, dst + out, pool);
    else if (repacked_by_column(w.type))
      repack_16bit_x8(part, dst + out, pool);
    else if (w.type == DType::Q8_0)
      repack_q8_0x8(part, dst + out, pool);
    else
      repack_q4_0x8(part, dst + out, pool);
    out += repacked_bytes(part);
    if (after_slice) after_slice(part);
  }
}

}  // namespace corral
