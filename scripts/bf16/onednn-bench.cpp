// oneDNN 2.6.3 (Debian's libdnnl-dev) at the model's GEMM and conv shapes, for docs/bf16-kernels.md: bf16 matmul
// (fp32 accumulation, fp32 C) against fp32 matmul, the fp32 -> bf16 reorders that feed it, and bf16 3x3
// convolutions (forward, backward data, backward weights) in oneDNN's preferred ("any") layouts against fp32.
// Not part of the build: scripts/bf16/onednn-bench.sh compiles and runs it. Single thread (OMP_NUM_THREADS=1).
//
// usage: onednn-bench gemm < shapes      lines "TA TB m n k calls" (as `bench --gemm-shapes` lists them)
//        onednn-bench conv N C K H        one 3x3 stride-1 pad-1 conv, N samples, C -> K channels, H x H maps
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace dnnl;
using dt = memory::data_type;
using tag = memory::format_tag;

static engine eng(engine::kind::cpu, 0);
static stream strm(eng);

/// Fastest of `reps` timed runs (after one untimed), seconds.
static double fastest(int reps, const std::function<void()> &f) {
    f();
    strm.wait();
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        strm.wait();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

static memory filled(const memory::desc &d, float value) {
    memory m(d, eng);
    if (d.data_type() == dt::f32) {
        auto *p = static_cast<float *>(m.get_data_handle());
        for (size_t i = 0; i < d.get_size() / 4; i++) p[i] = value * (float)((i * 7919) % 2001 - 1000) / 1000.f;
    } else {
        std::memset(m.get_data_handle(), 0x3f, d.get_size());
    }
    return m;
}

/// Row-major (rows, cols) matrix, stored transposed ((cols, rows) row-major) when `trans`.
static memory::desc matrix(long rows, long cols, bool trans, dt type) {
    return memory::desc({rows, cols}, type, trans ? memory::dims{1, rows} : memory::dims{cols, 1});
}

static double matmul_seconds(bool ta, bool tb, long m, long n, long k, dt in, int reps, std::string *impl) {
    auto a = matrix(m, k, ta, in), b = matrix(k, n, tb, in), c = matrix(m, n, false, dt::f32);
    matmul::primitive_desc pd(matmul::desc(a, b, c), eng);
    if (impl) *impl = pd.impl_info_str();
    matmul prim(pd);
    auto ma = filled(a, 1), mb = filled(b, 1), mc = filled(c, 0);
    int inner = std::max(1, (int)(2e7 / (2.0 * m * n * k)));
    return fastest(reps, [&] {
               for (int i = 0; i < inner; i++)
                   prim.execute(strm, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
           }) / inner;
}

/// fp32 -> bf16 reorder of a (rows, cols) matrix: what feeding a bf16 matmul from fp32 data costs.
static double reorder_seconds(long rows, long cols, int reps) {
    auto f = matrix(rows, cols, false, dt::f32), h = matrix(rows, cols, false, dt::bf16);
    auto mf = filled(f, 1);
    memory mh(h, eng);
    reorder r(mf, mh);
    int inner = std::max(1, (int)(1e6 / (double)(rows * cols)));
    return fastest(reps, [&] { for (int i = 0; i < inner; i++) r.execute(strm, mf, mh); }) / inner;
}

static int gemm_mode() {
    char ta, tb;
    long m, n, k, calls;
    std::printf("shape, calls, GFLOP/s fp32 matmul, GFLOP/s bf16 matmul, us to reorder A and B to bf16, impl\n");
    while (std::scanf(" %c %c %ld %ld %ld %ld", &ta, &tb, &m, &n, &k, &calls) == 6) {
        const double flop = 2.0 * m * n * k;
        std::string impl32, impl16;
        const double t32 = matmul_seconds(ta == 'T', tb == 'T', m, n, k, dt::f32, 7, &impl32);
        const double t16 = matmul_seconds(ta == 'T', tb == 'T', m, n, k, dt::bf16, 7, &impl16);
        const double ra = reorder_seconds(m, k, 7), rb = reorder_seconds(k, n, 7);
        std::printf("%c%c m=%ld n=%ld k=%ld, %ld, %.1f, %.1f, %.2f + %.2f, %s / %s\n", ta, tb, m, n, k, calls,
                    flop / t32 / 1e9, flop / t16 / 1e9, ra * 1e6, rb * 1e6, impl32.c_str(), impl16.c_str());
        std::fflush(stdout);
    }
    return 0;
}

/// One 3x3 conv in `type`, activations and weights in oneDNN's preferred layouts; ms per pass, plus the
/// NCHW fp32 -> preferred-layout reorders of x and dY.
static void conv_one(long N, long C, long K, long H, dt type) {
    memory::dims src{N, C, H, H}, wei{K, C, 3, 3}, dst{N, K, H, H}, bias{K}, st{1, 1}, pad{1, 1};
    auto sd = memory::desc(src, type, tag::any), wd = memory::desc(wei, type, tag::any);
    auto dd = memory::desc(dst, type, tag::any), bd = memory::desc(bias, dt::f32, tag::x);
    auto dwd = memory::desc(wei, dt::f32, tag::any);  // weight gradient kept fp32
    convolution_forward::desc fdesc(prop_kind::forward_training, algorithm::convolution_direct, sd, wd, bd, dd, st,
                                    pad, pad);
    convolution_forward::primitive_desc fpd(fdesc, eng);
    convolution_backward_data::primitive_desc bdpd(
        convolution_backward_data::desc(algorithm::convolution_direct, sd, wd, dd, st, pad, pad), eng, fpd);
    convolution_backward_weights::primitive_desc bwpd(
        convolution_backward_weights::desc(algorithm::convolution_direct, sd, type == dt::bf16 ? dwd : wd, bd, dd,
                                           st, pad, pad),
        eng, fpd);
    auto x = filled(fpd.src_desc(), 1), w = filled(fpd.weights_desc(), 0.05f), b = filled(bd, 0);
    auto y = filled(fpd.dst_desc(), 0), dy = filled(bdpd.diff_dst_desc(), 1), dx = filled(bdpd.diff_src_desc(), 0);
    auto dw = filled(bwpd.diff_weights_desc(), 0), db = filled(bwpd.diff_bias_desc(), 0);
    auto dyw = filled(bwpd.diff_dst_desc(), 1), xw = filled(bwpd.src_desc(), 1);
    convolution_forward f(fpd);
    convolution_backward_data bdata(bdpd);
    convolution_backward_weights bw(bwpd);
    const double tf = fastest(5, [&] {
        f.execute(strm, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}});
    });
    const double tbd = fastest(5, [&] {
        bdata.execute(strm, {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}});
    });
    const double tbw = fastest(5, [&] {
        bw.execute(strm, {{DNNL_ARG_SRC, xw}, {DNNL_ARG_DIFF_DST, dyw}, {DNNL_ARG_DIFF_WEIGHTS, dw},
                          {DNNL_ARG_DIFF_BIAS, db}});
    });
    auto plain = filled(memory::desc(src, dt::f32, tag::nchw), 1);
    reorder rx(plain, x);
    const double tr = fastest(5, [&] { rx.execute(strm, plain, x); });
    const double flop = 2.0 * N * K * C * 9 * H * H;
    std::printf("%s conv %ld->%ld @%ld batch %ld: fwd %.2f ms (%.0f GFLOP/s), bwd data %.2f ms (%.0f), bwd weights "
                "%.2f ms (%.0f); x NCHW f32 -> %s reorder %.2f ms; impl %s / %s / %s\n",
                type == dt::bf16 ? "bf16" : "f32 ", C, K, H, N, tf * 1e3, flop / tf / 1e9, tbd * 1e3,
                flop / tbd / 1e9, tbw * 1e3, flop / tbw / 1e9, type == dt::bf16 ? "bf16 blocked" : "f32 blocked",
                tr * 1e3, fpd.impl_info_str(), bdpd.impl_info_str(), bwpd.impl_info_str());
    std::fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc >= 2 && std::strcmp(argv[1], "gemm") == 0) return gemm_mode();
    if (argc == 6 && std::strcmp(argv[1], "conv") == 0) {
        const long N = std::atol(argv[2]), C = std::atol(argv[3]), K = std::atol(argv[4]), H = std::atol(argv[5]);
        conv_one(N, C, K, H, dt::f32);
        conv_one(N, C, K, H, dt::bf16);
        return 0;
    }
    std::fprintf(stderr, "usage: %s gemm < shapes | %s conv N C K H\n", argv[0], argv[0]);
    return 2;
}
