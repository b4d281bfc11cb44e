// Which instruction set the C kernels (GroupNorm, SiLU, exp) run with. The best one the CPU supports is picked
// by itself; CONTROLNET_KERNEL_ISA overrides it (to compare variants or rule one out), and tests run each one this
// machine has against the references.
import CKernels

public enum KernelISA {
    /// Every variant this build knows, fastest first.
    public static let all = ["avx512", "avx2", "generic"]
    public static let environmentVariable = "CONTROLNET_KERNEL_ISA"

    public struct SelectionError: Error, CustomStringConvertible {
        public let requested: String, reason: String
        public var description: String {
            "\(KernelISA.environmentVariable)=\(requested): \(reason); use one of "
                + "\(KernelISA.supported.joined(separator: ", ")) or auto (the best this CPU runs), or unset it"
        }
    }

    /// The variant running now.
    public static var current: String { String(cString: ck_isa()) }

    /// The variants this CPU (and build) can run, fastest first.
    public static var supported: [String] { all.filter { ck_isa_supported($0) != 0 } }

    /// Switches every later kernel call to `name` ("auto" for the best supported).
    public static func select(_ name: String) throws(SelectionError) {
        switch ck_select_isa(name) {
        case 0: return
        case -2: throw SelectionError(requested: name, reason: "this CPU cannot run it")
        default: throw SelectionError(requested: name, reason: "unknown instruction set")
        }
    }

    /// Applies CONTROLNET_KERNEL_ISA when set (non-empty).
    public static func selectFromEnvironment(_ environment: [String: String]) throws(SelectionError) {
        guard let value = environment[environmentVariable], !value.isEmpty else { return }
        try select(value)
    }
}
