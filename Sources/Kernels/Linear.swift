// Fully connected layer (the time embedding MLP), forward and backward via GEMM, with a loop reference.

public enum Linear {
    /// x (N, In), weight (Out, In), bias (Out) -> y (N, Out) = x W^T + b, overwritten.
    public static func forward(batch: Int, inFeatures: Int, outFeatures: Int, x: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               y: UnsafeMutablePointer<Float>) {
        for n in 0..<batch { (y + n * outFeatures).update(from: bias, count: outFeatures) }
        Gemm.sgemm(transA: false, transB: true, m: batch, n: outFeatures, k: inFeatures, alpha: 1,
                   a: x, lda: inFeatures, b: weight, ldb: inFeatures, beta: 1, c: y, ldc: outFeatures)
    }

    /// dY (N, Out); adds dX (N, In) += dY W, dWeight (Out, In) += dY^T x, dBias (Out) += column sums of dY.
    /// x is only read when dWeight != nil.
    public static func backward(batch: Int, inFeatures: Int, outFeatures: Int, x: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                                dBias: UnsafeMutablePointer<Float>?) {
        if let dX {
            Gemm.sgemm(transA: false, transB: false, m: batch, n: inFeatures, k: outFeatures, alpha: 1,
                       a: dY, lda: outFeatures, b: weight, ldb: inFeatures, beta: 1, c: dX, ldc: inFeatures)
        }
        if let dWeight {
            Gemm.sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: batch, alpha: 1,
                       a: dY, lda: outFeatures, b: x, ldb: inFeatures, beta: 1, c: dWeight, ldc: inFeatures)
        }
        if let dBias {
            for n in 0..<batch {
                let row = dY + n * outFeatures
                for o in 0..<outFeatures { dBias[o] += row[o] }
            }
        }
    }

    /// Reference forward: one Double dot product per output.
    public static func forwardNaive(batch: Int, inFeatures: Int, outFeatures: Int, x: UnsafePointer<Float>,
                                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                    y: UnsafeMutablePointer<Float>) {
        for n in 0..<batch {
            for o in 0..<outFeatures {
                var sum = Double(bias[o])
                for i in 0..<inFeatures { sum += Double(x[n * inFeatures + i]) * Double(weight[o * inFeatures + i]) }
                y[n * outFeatures + o] = Float(sum)
            }
        }
    }

    /// Reference backward: each gradient element as its own Double sum.
    public static func backwardNaive(batch: Int, inFeatures: Int, outFeatures: Int, x: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                     dX: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                                     dBias: UnsafeMutablePointer<Float>?) {
        if let dX {
            for n in 0..<batch {
                for i in 0..<inFeatures {
                    var sum = 0.0
                    for o in 0..<outFeatures {
                        sum += Double(dY[n * outFeatures + o]) * Double(weight[o * inFeatures + i])
                    }
                    dX[n * inFeatures + i] += Float(sum)
                }
            }
        }
        if let dWeight {
            for o in 0..<outFeatures {
                for i in 0..<inFeatures {
                    var sum = 0.0
                    for n in 0..<batch { sum += Double(dY[n * outFeatures + o]) * Double(x[n * inFeatures + i]) }
                    dWeight[o * inFeatures + i] += Float(sum)
                }
            }
        }
        if let dBias {
            for o in 0..<outFeatures {
                var sum = 0.0
                for n in 0..<batch { sum += Double(dY[n * outFeatures + o]) }
                dBias[o] += Float(sum)
            }
        }
    }
}
