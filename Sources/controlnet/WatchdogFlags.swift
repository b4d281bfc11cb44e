// The collective watchdog's flags (--stall-warning, --collective-timeout) for comm-check, and the one place the
// command line wraps a communicator in a WatchedCommunicator (training and comm-check alike).
import ArgumentParser
import Distributed
import Foundation

struct WatchdogFlags: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Seconds a collective (or checkpoint write) may wait before its rank warns, and again every as many seconds; "
            + "rank 0 names the ranks that have not joined. 0 disables the warnings."))
    var stallWarning: Double = 60

    @Option(help: ArgumentHelp(
        "Seconds after which a rank still waiting in a collective ends the job (exit 75) with the stalled "
            + "operation and step. 0 disables. See cluster/README.md for how it relates to the launcher's timeouts."))
    var collectiveTimeout: Double = 600

    func validate() throws {
        if let (option, message) = WatchdogSettings.problem(stallWarning: stallWarning, collectiveTimeout: collectiveTimeout) {
            throw ValidationError("\(option): \(message)")
        }
    }
}

enum CollectiveWatch {
    /// base wrapped in a watchdog with these limits, or base itself when both are 0. Collective under MPI (the side
    /// channel's set-up broadcasts rank 0's address): every rank calls it at the same point. `advice` ends the
    /// timeout message: how to resume, which option to raise.
    static func wrap(_ base: any Communicator, stallWarning: Double, collectiveTimeout: Double,
                     advice: String) throws -> any Communicator {
        var settings = WatchdogSettings(stallWarning: stallWarning, collectiveTimeout: collectiveTimeout)
        guard settings.isEnabled else { return base }
        settings.timeoutAdvice = advice
        let watched = try WatchedCommunicator(base, settings: settings)
        if base.rank == 0, let warning = LauncherTimeouts.partitionWarning(
            collectiveTimeout: collectiveTimeout, environment: ProcessInfo.processInfo.environment) {
            WatchdogOutput.standardError(rank: 0).warn(warning)
        }
        return watched
    }
}
