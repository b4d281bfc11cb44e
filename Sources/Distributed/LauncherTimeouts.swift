// How long Open MPI's mpirun takes to declare a silent node lost, read from the MCA parameters it hands every
// rank, so that rank 0 can say at start-up when --collective-timeout is too short to end a partitioned job.
//
// Why it matters (measured on cluster/local-cluster.sh, Open MPI 4.1.4): a rank that exits makes mpirun tell every
// node's daemon to stop its ranks. Across a network partition that message cannot be delivered, and mpirun waits
// until TCP gives up on the connection (tcp_retries2: about 15 min) before it exits. Its own keepalive on the
// idle control connection (oob_tcp_keepalive_time + intvl x probes, default 300 + 20 x 9 = 480 s) declares the
// node lost and ends the job at once, but only while mpirun has nothing queued for that node, i.e. only if it
// fires before the first rank exits. So the collective timeout must be longer than that detection time.

public enum LauncherTimeouts {
    /// Open MPI 4.x's defaults for the mpirun-to-daemon connections.
    public static let defaultKeepalive = (idle: 300.0, interval: 20.0, probes: 9.0)

    /// (worst-case seconds of silence before mpirun declares a node lost, how that number is made up), or nil when
    /// this is not a multi-node Open MPI job (or keepalive is off, so that mpirun never declares one lost).
    public static func openMPILostNodeDetection(environment: [String: String]) -> (seconds: Double, text: String)? {
        guard environment["OMPI_COMM_WORLD_SIZE"] != nil,
              let nodes = environment["OMPI_MCA_orte_num_nodes"].flatMap(Int.init), nodes > 1 else { return nil }
        func value(_ name: String, _ fallback: Double) -> Double {
            environment["OMPI_MCA_oob_tcp_keepalive_\(name)"].flatMap(Double.init) ?? fallback
        }
        let d = defaultKeepalive
        let idle = value("time", d.idle), interval = value("intvl", d.interval), probes = value("probes", d.probes)
        guard idle > 0 else { return nil }
        return (idle + interval * probes,
                "oob_tcp_keepalive_time \(Int(idle)) + \(Int(probes)) probes x oob_tcp_keepalive_intvl \(Int(interval)) s")
    }

    /// Rank 0's start-up warning when a partition would make mpirun wait for TCP, or nil.
    public static func partitionWarning(collectiveTimeout: Double, environment: [String: String]) -> String? {
        guard collectiveTimeout > 0,
              let (detection, text) = openMPILostNodeDetection(environment: environment),
              detection >= collectiveTimeout else { return nil }
        return "--collective-timeout \(Int(collectiveTimeout)) s is not longer than the time mpirun takes to declare "
            + "a silent node lost (\(text) = \(Int(detection)) s): after a network partition the stalled ranks end at "
            + "the timeout, but mpirun then cannot reach the cut-off node and waits for TCP to give up (about 15 min). "
            + "Raise --collective-timeout above \(Int(detection)) s, or pass mpirun e.g. --mca oob_tcp_keepalive_time 60 "
            + "--mca oob_tcp_keepalive_intvl 10 --mca oob_tcp_keepalive_probes 6 (a node lost after 60-120 s of "
            + "silence; see cluster/README.md)"
    }
}
