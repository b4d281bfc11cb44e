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
        // Float32 NCHW tensor kernels with forward/backward side by side and naive references.
        .target(name: "Kernels", dependencies: ["CBLAS", "CKernels"], swiftSettings: fast),
        // The safetensors file format (read/write), hand-written from the spec.
        .target(name: "SafeTensors", swiftSettings: fast),
        // The UNet, the ControlNet, parameter arenas, diffusion schedule, samplers, AdamW.
        .target(name: "Model", dependencies: ["Kernels", "SafeTensors"], swiftSettings: fast),
        // Datasets (IDX, MNIST-5k CSV, paired image folders), hints (Canny...), the sharded sampler, PNG/JPEG I/O.
        .target(name: "Datasets", dependencies: [
            "CZlib", "CPNG", "CTurboJPEG", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: fast),
        // Communicators: MPI and single-process Local.
        .target(name: "Distributed", dependencies: ["CMPI"], swiftSettings: fast),
        // The data-parallel trainer, checkpoints, metrics.
        .target(name: "Training", dependencies: [
            "Model", "Datasets", "Distributed", "SafeTensors", "Kernels",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: fast),
        .executableTarget(name: "controlnet", dependencies: [
            "Training", "Model", "Datasets", "Distributed", "Kernels", "CBLAS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),

        // Test helpers shared by the test targets (the assertClose tolerance rule).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "TestSupport"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Kernels", "SafeTensors", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Model", "Datasets", "Distributed", "Kernels"]),
    ],
    swiftLanguageModes: [.v6]
)
