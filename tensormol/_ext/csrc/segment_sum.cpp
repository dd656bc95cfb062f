// tensormol compiled ops, CPU part: deterministic segment sum over sorted segment pointers.
// Registered as torch.ops.tensormol_ext.segment_sum; the CUDA kernel (segment_sum_cuda.cu) adds
// the CUDA dispatch key when built with CUDA. The pure-PyTorch reference is
// tensormol.ops.segment_sum(..., backend="torch").
#include <torch/extension.h>
#include <ATen/Parallel.h>

namespace tensormol_ext {

// src: (E, F) contiguous; ptr: (S + 1,) int64 offsets, ptr[0] = 0, ptr[S] = E, non-decreasing.
// out[s] = sum_{e in [ptr[s], ptr[s+1])} src[e]. Each output row is written by one thread, in a
// fixed order, so the result is bitwise reproducible (unlike atomics-based index_add_).
at::Tensor segment_sum_cpu(const at::Tensor& src, const at::Tensor& ptr) {
  TORCH_CHECK(src.dim() == 2, "segment_sum: src must be 2-D (E, F), got ", src.dim(), "-D");
  TORCH_CHECK(ptr.dim() == 1 && ptr.scalar_type() == at::kLong,
              "segment_sum: ptr must be a 1-D int64 tensor");
  TORCH_CHECK(ptr.size(0) >= 1, "segment_sum: ptr must hold at least one offset");
  auto src_c = src.contiguous();
  auto ptr_c = ptr.contiguous();
  const int64_t num_segments = ptr_c.size(0) - 1;
  const int64_t num_features = src_c.size(1);
  auto out = at::zeros({num_segments, num_features}, src_c.options());
  const int64_t* p = ptr_c.data_ptr<int64_t>();
  TORCH_CHECK(p[0] == 0 && p[num_segments] == src_c.size(0),
              "segment_sum: ptr must start at 0 and end at src.size(0)");
  AT_DISPATCH_FLOATING_TYPES(src_c.scalar_type(), "segment_sum_cpu", [&] {
    const scalar_t* s = src_c.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, num_segments, 64, [&](int64_t begin, int64_t end) {
      for (int64_t seg = begin; seg < end; ++seg) {
        scalar_t* row = o + seg * num_features;
        for (int64_t e = p[seg]; e < p[seg + 1]; ++e) {
          const scalar_t* in = s + e * num_features;
          for (int64_t f = 0; f < num_features; ++f) row[f] += in[f];
        }
      }
    });
  });
  return out;
}

}  // namespace tensormol_ext

TORCH_LIBRARY(tensormol_ext, m) {
  m.def("segment_sum(Tensor src, Tensor ptr) -> Tensor");
}

TORCH_LIBRARY_IMPL(tensormol_ext, CPU, m) {
  m.impl("segment_sum", &tensormol_ext::segment_sum_cpu);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("has_cuda", []() {
#ifdef TENSORMOL_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
