// tensormol compiled ops, torch glue for the CUDA kernels of segment_sum_kernel.cu. Built only
// when torch has CUDA (its c10/cuda headers exist only in CUDA builds of torch).
#include <torch/extension.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

namespace tensormol_ext {

template <typename scalar_t>
cudaError_t launch_segment_sum(const scalar_t* src, const int64_t* ptr, scalar_t* out,
                               int64_t num_segments, int64_t num_features, cudaStream_t stream);

at::Tensor segment_sum_cuda(const at::Tensor& src, const at::Tensor& ptr) {
  TORCH_CHECK(src.dim() == 2, "segment_sum: src must be 2-D (E, F)");
  TORCH_CHECK(ptr.dim() == 1 && ptr.scalar_type() == at::kLong,
              "segment_sum: ptr must be a 1-D int64 tensor");
  TORCH_CHECK(src.device() == ptr.device(), "segment_sum: src and ptr on different devices");
  const c10::cuda::CUDAGuard guard(src.device());
  auto src_c = src.contiguous();
  auto ptr_c = ptr.contiguous();
  const int64_t num_segments = ptr_c.size(0) - 1;
  const int64_t num_features = src_c.size(1);
  auto out = at::zeros({num_segments, num_features}, src_c.options());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  cudaError_t err = cudaSuccess;
  AT_DISPATCH_FLOATING_TYPES(src_c.scalar_type(), "segment_sum_cuda", [&] {
    err = launch_segment_sum<scalar_t>(src_c.data_ptr<scalar_t>(), ptr_c.data_ptr<int64_t>(),
                                       out.data_ptr<scalar_t>(), num_segments, num_features,
                                       stream);
  });
  TORCH_CHECK(err == cudaSuccess, "segment_sum kernel failed: ", cudaGetErrorString(err));
  return out;
}

}  // namespace tensormol_ext

TORCH_LIBRARY_IMPL(tensormol_ext, CUDA, m) {
  m.impl("segment_sum", &tensormol_ext::segment_sum_cuda);
}
