// swift-tools-version:6.0
// The ControlNet trainer: frozen UNet + trainable ControlNet, data-parallel over MPI, on CPUs.
import PackageDescription

// Numeric kernels are bounds-checked in debug (tests) and unchecked in release (training).
let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "controlnet",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "controlnet", targets: ["controlnet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // C bridges: thin static-inline shims over system libraries (pkg-config names in module maps).
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),

        // Element-wise and GroupNorm kernels in C, built per instruction set and chosen at run time. Always
        // optimised: the debug-built tests train small models through them.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        // Holds a training process's stop signals blocked from its first constructor until its handlers exist.
        .target(name: "CEarlySignals"),
        // Float32 NCHW tensor kernels with forward/backward side by side and naive references; the BLAS runtime.
        .target(name: "Kernels", dependencies: ["CBLAS", "CKernels"], swiftSettings: fast),
        // The one family of counter-based random numbers (SplitMix64, xoshiro256** streams).
        .target(name: "Randomness", swiftSettings: fast),
        // The safetensors file format (read/write), hand-written from the spec.
        .target(name: "SafeTensors", swiftSettings: fast),
        // The UNet, the ControlNet, parameter arenas, initialisation, diffusion schedule, samplers, AdamW, LR schedule.
        .target(name: "Model", dependencies: ["Kernels", "SafeTensors", "Randomness"], swiftSettings: fast),
        // Datasets (IDX, MNIST-5k CSV, paired image folders), hints (Canny...), held-out hint sets, the sharded
        // sampler, PNG/JPEG I/O through libpng and libjpeg-turbo.
        .target(name: "Datasets", dependencies: [
            "CZlib", "CPNG", "CTurboJPEG", "Randomness", "SafeTensors", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: fast),
        // Communicators: MPI and single-process Local.
        .target(name: "Distributed", dependencies: ["CMPI"], swiftSettings: fast),
        // The training step, the run (resume, checkpoints, validation), generation and evaluation.
        .target(name: "Training", dependencies: [
            "Model", "Datasets", "Distributed", "SafeTensors", "Kernels", "Randomness",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: fast),
        // Speed measurements: the training step, convs, norms and sgemm at any config's shapes; PyTorch side by side.
        .target(name: "Benchmarks", dependencies: ["Training", "Model", "Kernels", "Distributed", "Randomness"],
                swiftSettings: fast),
        .executableTarget(name: "controlnet", dependencies: [
            "Training", "Benchmarks", "Model", "Datasets", "Distributed", "Kernels", "SafeTensors", "CEarlySignals",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),

        // Test helpers shared by the test targets: the assertClose tolerance rule and PyTorch's reference fixtures.
        .target(name: "TestSupport", dependencies: ["Model", "SafeTensors"], path: "Tests/TestSupport",
                resources: [.copy("Fixtures")]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "TestSupport", "Randomness"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "TestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Kernels", "SafeTensors", "TestSupport", "Randomness"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Randomness", "CZlib"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "Kernels", "Model"]),
        .testTarget(name: "TrainingTests", dependencies: [
            "Training", "Model", "Datasets", "Distributed", "Kernels", "SafeTensors", "TestSupport", "Randomness",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
