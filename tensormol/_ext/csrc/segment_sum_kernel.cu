// tensormol compiled ops, CUDA kernels. Deliberately free of torch headers: it compiles with a
// bare nvcc (checked on machines whose torch is a CPU build), and the torch glue in
// segment_sum_cuda.cpp calls the launchers below with raw pointers and the current stream.
#include <cuda_runtime.h>
#include <cstdint>

namespace tensormol_ext {

// One block per segment, threads over features; each output element is written by one thread
// in a fixed order, so results are bitwise reproducible (no atomics).
template <typename scalar_t>
__global__ void segment_sum_kernel(const scalar_t* __restrict__ src,
                                   const int64_t* __restrict__ ptr, scalar_t* __restrict__ out,
                                   int64_t num_features) {
  const int64_t seg = blockIdx.x;
  const int64_t begin = ptr[seg];
  const int64_t end = ptr[seg + 1];
  for (int64_t f = threadIdx.x; f < num_features; f += blockDim.x) {
    scalar_t acc = 0;
    for (int64_t e = begin; e < end; ++e) acc += src[e * num_features + f];
    out[seg * num_features + f] = acc;
  }
}

template <typename scalar_t>
cudaError_t launch_segment_sum(const scalar_t* src, const int64_t* ptr, scalar_t* out,
                               int64_t num_segments, int64_t num_features,
                               cudaStream_t stream) {
  if (num_segments == 0 || num_features == 0) return cudaSuccess;
  const int threads = num_features >= 128 ? 128 : 32;
  segment_sum_kernel<scalar_t><<<static_cast<unsigned int>(num_segments), threads, 0, stream>>>(
      src, ptr, out, num_features);
  return cudaGetLastError();
}

template cudaError_t launch_segment_sum<float>(const float*, const int64_t*, float*, int64_t,
                                               int64_t, cudaStream_t);
template cudaError_t launch_segment_sum<double>(const double*, const int64_t*, double*, int64_t,
                                                int64_t, cudaStream_t);

}  // namespace tensormol_ext
