// tensormol compiled ops, CPU part: the Gaunt tensor product on a sphere grid, fused per tile.
//
// out = analysis(prod_i synthesis_i(x_i)), with each synthesis/analysis given as a separable
// table (see tensormol/ops/_gaunt_grid.py, whose torch twin computes the same thing):
//   leg   (K, 2, n_theta, L+1)  theta part of the harmonic in slot (k, c, l) on each ring
//   index (K, 2, L+1) int64     coefficient position of slot (k, c, l), -1 when empty
//   trig  (K, 2, n_phi)         cos(k phi_j) / sin(k phi_j), times weights for analysis
// synthesis: g[q][j] = sum_{k,c} trig[k,c,j] sum_l leg[k,c,q,l] x[index[k,c,l]]
// analysis:  z[index[k,c,l]] = sum_q leg[k,c,q,l] sum_j trig[k,c,j] g[q][j]
// Registered as torch.ops.tensormol_ext.gaunt_grid. Rows are processed in tiles of kTile with
// the row index innermost, so every inner loop is a fixed-length vector FMA and all temporaries
// of a tile (rings, grid) stay in L1/L2: no grid-sized tensor is ever allocated, which on CPUs
// (and VMs with costly page faults) is what made the tensor-op route slow.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace tensormol_ext {
namespace {

constexpr int kTile = 16;

// One tile of rows as a GCC vector: arithmetic on it is plain vector code at the host width
// (the compiler's auto-vectorizer, tried first, interleaved the loops badly: 10x slower).
template <typename scalar_t>
struct TileVec;
template <>
struct TileVec<float> {
  typedef float type __attribute__((vector_size(kTile * sizeof(float))));
};
template <>
struct TileVec<double> {
  typedef double type __attribute__((vector_size(kTile * sizeof(double))));
};

struct Slot {      // one (k, c, l) entry of a table that is not empty
  int64_t coeff;   // position in the coefficient vector
  int64_t l;
};

template <typename scalar_t>
struct Table {
  const scalar_t* leg;   // (K, 2, n_theta, Lp1)
  const scalar_t* trig;  // (K, 2, n_phi)
  int64_t Lp1;
  std::vector<Slot> slots;             // non-empty slots, grouped by kc
  std::vector<int64_t> kc_used;        // kc values with at least one slot
  std::vector<int64_t> kc_begin;       // slots of kc_used[i]: [kc_begin[i], kc_begin[i+1])
  // Positions u in kc_used of the cos (c = 0) and sin (c = 1) rows; with `mirrored`, the trig
  // rows are even (cos) / odd (sin) under j -> n_phi - j, so the phi steps work on half the
  // points (E_j, O_j for j <= n_phi / 2, then g_j = E_j + O_j, g_{n-j} = E_j - O_j).
  std::vector<int64_t> u_cos, u_sin, u_all;
  bool mirrored = false;
};

// Every check of a table runs here, before the dtype dispatch, so nothing throws from inside
// the dispatched code (an error thrown there crashed the process instead of reaching Python on
// one machine: torch 2.11, CUDA 13 image).
void check_table(const at::Tensor& leg, const at::Tensor& index, const at::Tensor& trig,
                 int64_t n_theta, int64_t n_phi, int64_t dim, at::ScalarType dtype,
                 const char* what) {
  TORCH_CHECK(leg.dim() == 4 && leg.size(1) == 2 && leg.size(2) == n_theta,
              "gaunt_grid: ", what, " leg must be (K, 2, n_theta, L+1)");
  const int64_t K = leg.size(0), Lp1 = leg.size(3);
  TORCH_CHECK(index.dim() == 3 && index.size(0) == K && index.size(1) == 2 &&
                  index.size(2) == Lp1 && index.scalar_type() == at::kLong,
              "gaunt_grid: ", what, " index must be int64 (K, 2, L+1)");
  TORCH_CHECK(trig.dim() == 3 && trig.size(0) == K && trig.size(1) == 2 && trig.size(2) == n_phi,
              "gaunt_grid: ", what, " trig must be (K, 2, n_phi)");
  TORCH_CHECK(leg.is_contiguous() && trig.is_contiguous() && index.is_contiguous(),
              "gaunt_grid: tables must be contiguous");
  TORCH_CHECK(leg.scalar_type() == dtype && trig.scalar_type() == dtype,
              "gaunt_grid: tables must have the inputs' dtype");
  const int64_t* idx = index.data_ptr<int64_t>();
  for (int64_t n = 0; n < index.numel(); ++n)
    TORCH_CHECK(idx[n] < dim, "gaunt_grid: ", what, " index ", idx[n], " out of range ", dim);
}

// Builds the slot lists of a table already checked by check_table.
template <typename scalar_t>
Table<scalar_t> make_table(const at::Tensor& leg, const at::Tensor& index, const at::Tensor& trig,
                           int64_t n_phi) {
  const int64_t K = leg.size(0), Lp1 = leg.size(3);
  Table<scalar_t> t;
  t.leg = leg.data_ptr<scalar_t>();
  t.trig = trig.data_ptr<scalar_t>();
  t.Lp1 = Lp1;
  const int64_t* idx = index.data_ptr<int64_t>();
  for (int64_t kc = 0; kc < 2 * K; ++kc) {
    bool any = false;
    for (int64_t l = 0; l < Lp1; ++l) {
      const int64_t d = idx[kc * Lp1 + l];
      if (d < 0) continue;
      if (!any) {
        t.kc_used.push_back(kc);
        t.kc_begin.push_back(static_cast<int64_t>(t.slots.size()));
        any = true;
      }
      t.slots.push_back({d, l});
    }
  }
  t.kc_begin.push_back(static_cast<int64_t>(t.slots.size()));
  bool mirrored = true;
  const scalar_t tol = 64 * std::numeric_limits<scalar_t>::epsilon();  // rounding of cos/sin
  for (size_t u = 0; u < t.kc_used.size(); ++u) {
    const int64_t kc = t.kc_used[u];
    (kc % 2 == 0 ? t.u_cos : t.u_sin).push_back(static_cast<int64_t>(u));
    t.u_all.push_back(static_cast<int64_t>(u));
    const scalar_t* row = t.trig + kc * n_phi;
    const scalar_t sign = kc % 2 == 0 ? scalar_t(1) : scalar_t(-1);
    scalar_t big = 0;
    for (int64_t j = 0; j < n_phi; ++j) big = std::max(big, std::abs(row[j]));
    for (int64_t j = 1; j < n_phi && mirrored; ++j)
      mirrored = std::abs(row[j] - sign * row[n_phi - j]) <= tol * big;
    if (kc % 2 == 1) mirrored = mirrored && std::abs(row[0]) <= tol * big;
  }
  t.mirrored = mirrored;
  return t;
}

// out[j] = sum over u in `us` of trig[kc_used[u]][j] * rings[u][q], for j < nj (4 j at a time:
// each ring tile loaded once feeds four accumulators).
template <typename scalar_t, typename V = typename TileVec<scalar_t>::type>
void phi_synthesis(const Table<scalar_t>& tab, const std::vector<int64_t>& us, const V* rings,
                   int64_t q, int64_t n_theta, int64_t n_phi, int64_t nj, V* out) {
  int64_t j = 0;
  for (; j + 4 <= nj; j += 4) {
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (const int64_t u : us) {
      const V r = rings[u * n_theta + q];
      const scalar_t* tr = tab.trig + tab.kc_used[u] * n_phi + j;
      a0 += tr[0] * r;
      a1 += tr[1] * r;
      a2 += tr[2] * r;
      a3 += tr[3] * r;
    }
    out[j] = a0; out[j + 1] = a1; out[j + 2] = a2; out[j + 3] = a3;
  }
  for (; j < nj; ++j) {
    V a0 = {};
    for (const int64_t u : us) a0 += tab.trig[tab.kc_used[u] * n_phi + j] * rings[u * n_theta + q];
    out[j] = a0;
  }
}

// rings[u][q] = sum_{j < nj} trig[kc_used[u]][j] * g[j] for u in `us` (4 u at a time).
template <typename scalar_t, typename V = typename TileVec<scalar_t>::type>
void phi_analysis(const Table<scalar_t>& tab, const std::vector<int64_t>& us, const V* g,
                  int64_t q, int64_t n_theta, int64_t n_phi, int64_t nj, V* rings) {
  size_t i = 0;
  for (; i + 4 <= us.size(); i += 4) {
    const scalar_t* t0 = tab.trig + tab.kc_used[us[i]] * n_phi;
    const scalar_t* t1 = tab.trig + tab.kc_used[us[i + 1]] * n_phi;
    const scalar_t* t2 = tab.trig + tab.kc_used[us[i + 2]] * n_phi;
    const scalar_t* t3 = tab.trig + tab.kc_used[us[i + 3]] * n_phi;
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t j = 0; j < nj; ++j) {
      const V v = g[j];
      a0 += t0[j] * v;
      a1 += t1[j] * v;
      a2 += t2[j] * v;
      a3 += t3[j] * v;
    }
    rings[us[i] * n_theta + q] = a0;
    rings[us[i + 1] * n_theta + q] = a1;
    rings[us[i + 2] * n_theta + q] = a2;
    rings[us[i + 3] * n_theta + q] = a3;
  }
  for (; i < us.size(); ++i) {
    const scalar_t* t0 = tab.trig + tab.kc_used[us[i]] * n_phi;
    V a0 = {};
    for (int64_t j = 0; j < nj; ++j) a0 += t0[j] * g[j];
    rings[us[i] * n_theta + q] = a0;
  }
}

// Grid values of one input on one tile: xt (D tiles) -> grid (n_theta * n_phi tiles),
// multiplied into `grid` unless `first`. rings: scratch of (#kc used) * n_theta tiles.
template <typename scalar_t, typename V = typename TileVec<scalar_t>::type>
void synthesize(const Table<scalar_t>& tab, const V* xt, int64_t n_theta, int64_t n_phi,
                V* rings, V* scratch, V* grid, bool first) {
  const int64_t nkc = static_cast<int64_t>(tab.kc_used.size());
  for (int64_t u = 0; u < nkc; ++u) {
    const int64_t kc = tab.kc_used[u];
    for (int64_t q = 0; q < n_theta; ++q) {
      V acc = {};
      const scalar_t* leg = tab.leg + (kc * n_theta + q) * tab.Lp1;
      for (int64_t s = tab.kc_begin[u]; s < tab.kc_begin[u + 1]; ++s)
        acc += leg[tab.slots[s].l] * xt[tab.slots[s].coeff];
      rings[u * n_theta + q] = acc;
    }
  }
  const int64_t half = n_phi / 2;
  for (int64_t q = 0; q < n_theta; ++q) {
    V* g = grid + q * n_phi;
    if (tab.mirrored) {  // phi_j and phi_{n-j}: same cos, opposite sin
      V* even = scratch;
      V* odd = scratch + half + 1;
      phi_synthesis(tab, tab.u_cos, rings, q, n_theta, n_phi, half + 1, even);
      phi_synthesis(tab, tab.u_sin, rings, q, n_theta, n_phi, half + 1, odd);
      for (int64_t j = 0; j <= half; ++j) {
        const V plus = even[j] + odd[j];
        if (first) g[j] = plus; else g[j] *= plus;
        if (j > 0 && n_phi - j != j) {
          const V minus = even[j] - odd[j];
          if (first) g[n_phi - j] = minus; else g[n_phi - j] *= minus;
        }
      }
    } else {
      phi_synthesis(tab, tab.u_all, rings, q, n_theta, n_phi, n_phi, scratch);
      for (int64_t j = 0; j < n_phi; ++j) {
        if (first) g[j] = scratch[j]; else g[j] *= scratch[j];
      }
    }
  }
}

// Coefficients of the grid on one tile: grid (n_theta * n_phi tiles) -> zt (dim tiles).
template <typename scalar_t, typename V = typename TileVec<scalar_t>::type>
void analyze(const Table<scalar_t>& tab, const V* grid, int64_t n_theta, int64_t n_phi,
             V* rings, V* scratch, V* zt) {
  const int64_t nkc = static_cast<int64_t>(tab.kc_used.size());
  const int64_t half = n_phi / 2;
  for (int64_t q = 0; q < n_theta; ++q) {
    const V* g = grid + q * n_phi;
    if (tab.mirrored) {  // fold phi_{n-j} onto phi_j: sums for cos, differences for sin
      V* sums = scratch;
      V* diffs = scratch + half + 1;
      for (int64_t j = 0; j <= half; ++j) {
        const bool paired = j > 0 && n_phi - j != j;
        sums[j] = paired ? g[j] + g[n_phi - j] : g[j];
        diffs[j] = paired ? g[j] - g[n_phi - j] : V{};
      }
      phi_analysis(tab, tab.u_cos, sums, q, n_theta, n_phi, half + 1, rings);
      phi_analysis(tab, tab.u_sin, diffs, q, n_theta, n_phi, half + 1, rings);
    } else {
      phi_analysis(tab, tab.u_all, g, q, n_theta, n_phi, n_phi, rings);
    }
  }
  for (int64_t u = 0; u < nkc; ++u) {
    const int64_t kc = tab.kc_used[u];
    for (int64_t s = tab.kc_begin[u]; s < tab.kc_begin[u + 1]; ++s) {
      V acc = {};
      const scalar_t* leg = tab.leg + kc * n_theta * tab.Lp1 + tab.slots[s].l;
      for (int64_t q = 0; q < n_theta; ++q) acc += leg[q * tab.Lp1] * rings[u * n_theta + q];
      zt[tab.slots[s].coeff] = acc;
    }
  }
}

}  // namespace

at::Tensor gaunt_grid_cpu(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& legs,
                          const std::vector<at::Tensor>& indices,
                          const std::vector<at::Tensor>& trigs, const at::Tensor& leg_out,
                          const at::Tensor& index_out, const at::Tensor& trig_out,
                          int64_t dim_out) {
  const size_t n_in = xs.size();
  TORCH_CHECK(n_in >= 1, "gaunt_grid: needs at least one input");
  TORCH_CHECK(legs.size() == n_in && indices.size() == n_in && trigs.size() == n_in,
              "gaunt_grid: one table per input");
  const int64_t n_theta = leg_out.size(2), n_phi = trig_out.size(2);
  const int64_t Z = xs[0].size(0);
  for (const auto& x : xs) {
    TORCH_CHECK(x.dim() == 2 && x.size(0) == Z && x.is_contiguous(),
                "gaunt_grid: inputs must be contiguous (Z, D) with the same Z");
    TORCH_CHECK(x.scalar_type() == xs[0].scalar_type() && x.device().is_cpu(),
                "gaunt_grid: inputs must share one floating dtype on the CPU");
  }
  for (size_t i = 0; i < n_in; ++i)
    check_table(legs[i], indices[i], trigs[i], n_theta, n_phi, xs[i].size(1),
                xs[0].scalar_type(), "input");
  check_table(leg_out, index_out, trig_out, n_theta, n_phi, dim_out, xs[0].scalar_type(),
              "output");
  auto out = at::empty({Z, dim_out}, xs[0].options());
  AT_DISPATCH_FLOATING_TYPES(xs[0].scalar_type(), "gaunt_grid_cpu", [&] {
    std::vector<Table<scalar_t>> tabs;
    int64_t max_dim = dim_out, max_kc = 0;
    for (size_t i = 0; i < n_in; ++i) {
      tabs.push_back(make_table<scalar_t>(legs[i], indices[i], trigs[i], n_phi));
      max_dim = std::max(max_dim, xs[i].size(1));
      max_kc = std::max<int64_t>(max_kc, tabs.back().kc_used.size());
    }
    const auto tab_out = make_table<scalar_t>(leg_out, index_out, trig_out, n_phi);
    max_kc = std::max<int64_t>(max_kc, tab_out.kc_used.size());
    std::vector<const scalar_t*> xp;
    for (const auto& x : xs) xp.push_back(x.data_ptr<scalar_t>());
    scalar_t* op = out.data_ptr<scalar_t>();
    const int64_t n_tiles = (Z + kTile - 1) / kTile;
    at::parallel_for(0, n_tiles, 1, [&](int64_t begin, int64_t end) {
      using V = typename TileVec<scalar_t>::type;
      std::vector<V> xt(max_dim), zt(dim_out), rings(max_kc * n_theta), grid(n_theta * n_phi);
      std::vector<V> scratch(n_phi + 2);
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t r0 = tile * kTile;
        const int64_t nr = std::min<int64_t>(kTile, Z - r0);
        for (size_t i = 0; i < n_in; ++i) {
          const int64_t D = xs[i].size(1);
          scalar_t* xs_t = reinterpret_cast<scalar_t*>(xt.data());
          if (nr < kTile) std::fill(xs_t, xs_t + D * kTile, scalar_t(0));
          const scalar_t* src = xp[i] + r0 * D;
          for (int64_t t = 0; t < nr; ++t)
            for (int64_t d = 0; d < D; ++d) xs_t[d * kTile + t] = src[t * D + d];
          synthesize<scalar_t>(tabs[i], xt.data(), n_theta, n_phi, rings.data(), scratch.data(),
                               grid.data(), i == 0);
        }
        std::fill(zt.begin(), zt.end(), V{});
        analyze<scalar_t>(tab_out, grid.data(), n_theta, n_phi, rings.data(), scratch.data(),
                          zt.data());
        const scalar_t* zs = reinterpret_cast<const scalar_t*>(zt.data());
        scalar_t* dst = op + r0 * dim_out;
        for (int64_t t = 0; t < nr; ++t)
          for (int64_t d = 0; d < dim_out; ++d) dst[t * dim_out + d] = zs[d * kTile + t];
      }
    });
  });
  return out;
}

}  // namespace tensormol_ext

TORCH_LIBRARY_FRAGMENT(tensormol_ext, m) {
  m.def(
      "gaunt_grid(Tensor[] xs, Tensor[] legs, Tensor[] indices, Tensor[] trigs, Tensor leg_out, "
      "Tensor index_out, Tensor trig_out, int dim_out) -> Tensor");
}

TORCH_LIBRARY_IMPL(tensormol_ext, CPU, m) {
  m.impl("gaunt_grid", &tensormol_ext::gaunt_grid_cpu);
}
