// The timestep (and optional label) embedding: emb = linear2(silu(linear1(sinusoid(t)))) [+ label_embed[y]].
// Every ResBlock consumes silu(emb), so it is computed once per pass and its gradient gathered once.
import Foundation
import Kernels

/// Sinusoidal embedding: cat(cos(t f), sin(t f)), f_i = exp(-ln(10000) i / half), in Double then Float.
/// t: (N) -> out: (N, dim)
public func timestepEmbedding(_ t: [Int], dim: Int, into out: UnsafeMutablePointer<Float>) {
    let half = dim / 2
    for (row, step) in t.enumerated() {
        for i in 0..<half {
            let freq = exp(-log(10000.0) * Double(i) / Double(half))
            let arg = Double(step) * freq
            out[row * dim + i] = Float(cos(arg))
            out[row * dim + half + i] = Float(sin(arg))
        }
    }
}

final class TimeEmbeddingLayer {
    let linear1: LinearParams, linear2: LinearParams
    let labelEmbed: Int?          // offset of (num_classes + 1, E) or nil
    let numClasses: Int, channels: Int, embedDim: Int

    init(_ table: inout ParameterTable, config: ModelConfig) {
        channels = config.modelChannels; embedDim = config.embedDim; numClasses = config.numClasses
        linear1 = LinearParams(&table, "time_embed.linear1", channels, embedDim)
        linear2 = LinearParams(&table, "time_embed.linear2", embedDim, embedDim)
        labelEmbed = numClasses > 0 ? table.add("label_embed.weight", [numClasses + 1, embedDim]) : nil
    }

    private var n = 0
    private var sinusoid: UnsafeMutablePointer<Float>?, pre1: UnsafeMutablePointer<Float>?
    private var act1: UnsafeMutablePointer<Float>?, emb: UnsafeMutablePointer<Float>?
    private var labels: [Int] = []

    /// Returns silu(emb) (N, E). labels: (N) values in 0...numClasses (numClasses = "no label"), ignored if
    /// the config has no classes; nil means "no label" for every sample.
    func forward(_ ws: WeightSource, t: [Int], labels: [Int]?, arenas: StepArenas) -> UnsafeMutablePointer<Float> {
        let acts = arenas.acts
        n = t.count
        let sinusoid = acts.take(n * channels), pre1 = acts.take(n * embedDim), act1 = acts.take(n * embedDim)
        let emb = acts.take(n * embedDim), siluEmb = acts.take(n * embedDim)
        timestepEmbedding(t, dim: channels, into: sinusoid)
        linear1.forward(ws, batch: n, sinusoid, into: pre1)
        SiLU.forward(count: n * embedDim, x: pre1, y: act1)
        linear2.forward(ws, batch: n, act1, into: emb)
        if let labelEmbed {
            self.labels = labels ?? Array(repeating: numClasses, count: n)
            precondition(self.labels.count == n, "labels: \(self.labels.count) for a batch of \(n)")
            for (row, label) in self.labels.enumerated() {
                precondition((0...numClasses).contains(label), "label \(label) out of 0...\(numClasses)")
                Elementwise.axpy(count: embedDim, alpha: 1, x: ws.p(labelEmbed + label * embedDim),
                                 y: emb + row * embedDim)
            }
        }
        SiLU.forward(count: n * embedDim, x: emb, y: siluEmb)
        self.sinusoid = sinusoid; self.pre1 = pre1; self.act1 = act1; self.emb = emb
        return siluEmb
    }

    /// dSiluEmb: (N, E), the sum over every ResBlock's time_proj input gradient.
    func backward(_ ws: WeightSource, dSiluEmb: UnsafeMutablePointer<Float>, arenas: StepArenas) {
        guard ws.trainable else { return }
        let grads = arenas.grads
        let mark = grads.mark()
        let dEmb = grads.takeZeroed(n * embedDim)
        SiLU.backward(count: n * embedDim, x: emb!, dY: dSiluEmb, dX: dEmb)
        if let labelEmbed, let g = ws.g(labelEmbed) {
            for (row, label) in labels.enumerated() {
                Elementwise.axpy(count: embedDim, alpha: 1, x: dEmb + row * embedDim, y: g + label * embedDim)
            }
        }
        let dAct1 = grads.takeZeroed(n * embedDim)
        linear2.backward(ws, batch: n, act1!, dY: dEmb, dX: dAct1)
        let dPre1 = grads.takeZeroed(n * embedDim)
        SiLU.backward(count: n * embedDim, x: pre1!, dY: dAct1, dX: dPre1)
        linear1.backward(ws, batch: n, sinusoid!, dY: dPre1, dX: nil)
        grads.release(to: mark)
    }
}
