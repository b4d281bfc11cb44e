// Direct-loop convolution: the reference the im2col/GEMM kernels of Conv2D.swift are tested against.

extension Conv2D {
    /// x (N, Cin, H, W), weight (Cout, Cin, K, K), bias (Cout) -> y (N, Cout, Ho, Wo); Double accumulation.
    public static func forwardNaive(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                    bias: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let k = s.kernel, ho = s.outHeight, wo = s.outWidth
        for n in 0..<s.batch {
            for co in 0..<s.outChannels {
                for oh in 0..<ho {
                    for ow in 0..<wo {
                        var sum = Double(bias[co])
                        for ci in 0..<s.inChannels {
                            for kh in 0..<k {
                                for kw in 0..<k {
                                    let ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw
                                    if ih < 0 || ih >= s.height || iw < 0 || iw >= s.width { continue }
                                    let xv = x[((n * s.inChannels + ci) * s.height + ih) * s.width + iw]
                                    let wv = weight[((co * s.inChannels + ci) * k + kh) * k + kw]
                                    sum += Double(xv) * Double(wv)
                                }
                            }
                        }
                        y[((n * s.outChannels + co) * ho + oh) * wo + ow] = Float(sum)
                    }
                }
            }
        }
    }

    /// dY (N, Cout, Ho, Wo); adds into dX (N, Cin, H, W), dWeight (Cout, Cin, K, K), dBias (Cout) when non-nil,
    /// by walking every (output, tap) pair once.
    public static func backwardNaive(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                     dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                                     dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?) {
        let k = s.kernel, ho = s.outHeight, wo = s.outWidth
        for n in 0..<s.batch {
            for co in 0..<s.outChannels {
                for oh in 0..<ho {
                    for ow in 0..<wo {
                        let g = dY[((n * s.outChannels + co) * ho + oh) * wo + ow]
                        dBias?[co] += g
                        for ci in 0..<s.inChannels {
                            for kh in 0..<k {
                                for kw in 0..<k {
                                    let ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw
                                    if ih < 0 || ih >= s.height || iw < 0 || iw >= s.width { continue }
                                    let xi = ((n * s.inChannels + ci) * s.height + ih) * s.width + iw
                                    let wi = ((co * s.inChannels + ci) * k + kh) * k + kw
                                    dX?[xi] += g * weight[wi]
                                    if let dWeight { dWeight[wi] += g * x[xi] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
