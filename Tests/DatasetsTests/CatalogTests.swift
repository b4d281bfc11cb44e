// Named datasets and path loading: MNIST-5k's class-balanced split, Fashion-MNIST's 60k/10k, IDX paths with their
// labels beside them, the [-1, 1] mapping, and the errors for missing data and mismatched counts.
import Datasets
import Foundation
import XCTest

final class CatalogTests: XCTestCase {
    private let dataDirectory = Fixtures.repositoryRoot.appendingPathComponent("data")

    func testMNIST5kSplitIsClassBalanced() throws {
        let csv = dataDirectory.appendingPathComponent("mnist_5k.csv.gz")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: csv.path), "data/mnist_5k.csv.gz absent: run scripts/setup.sh")
        let train = try DatasetCatalog.load("mnist5k", split: .train, dataDirectory: dataDirectory)
        let test = try DatasetCatalog.load("mnist5k", split: .test, dataDirectory: dataDirectory)
        XCTAssertEqual([train.count, test.count], [4000, 1000])
        XCTAssertEqual([train.channels, train.height, train.width], [1, 28, 28])
        for digit in Int32(0) ... 9 {
            XCTAssertEqual(train.labels!.filter { $0 == digit }.count, 400, "train digit \(digit)")
            XCTAssertEqual(test.labels!.filter { $0 == digit }.count, 100, "test digit \(digit)")
        }
        // Per digit, the first 400 rows train and the last 100 test: test image 0 is the file's row 400 (a zero).
        let all = try CSVImages.read(csv)
        XCTAssertEqual(Array(test.rawImage(0)), Array(all.pixels[400 * 784 ..< 401 * 784]))
        XCTAssertEqual(Array(train.rawImage(400)), Array(all.pixels[500 * 784 ..< 501 * 784]))  // first "1"
        // No image is in both splits.
        var trainSet = Set<[UInt8]>()
        for i in 0 ..< train.count { trainSet.insert(Array(train.rawImage(i))) }
        let shared = (0 ..< test.count).filter { trainSet.contains(Array(test.rawImage($0))) }.count
        XCTAssertEqual(shared, 0)
    }

    func testFashionSplits() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"),
                          "dataset-fashion-mnist not installed")
        let test = try DatasetCatalog.load("fashion", split: .test, dataDirectory: dataDirectory)
        XCTAssertEqual([test.count, test.channels, test.height, test.width], [10000, 1, 28, 28])
        XCTAssertEqual(test.labels?.count, 10000)
        let train = try DatasetCatalog.load("fashion", split: .train, dataDirectory: dataDirectory)
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(Set(train.labels!), Set(0 ... 9))
    }

    func testMissingMNIST5kSaysRunSetup() throws {
        let dir = try makeScratchDirectory(self)
        assertDatasetError(try DatasetCatalog.load("mnist5k", split: .train, dataDirectory: dir),
                           mentions: ["mnist_5k.csv.gz", "scripts/setup.sh"])
    }

    func testUnknownName() {
        assertDatasetError(try DatasetCatalog.load("cifar-17", split: .train, dataDirectory: URL(fileURLWithPath: "/nonexistent")),
                           mentions: ["cifar-17", "mnist5k", "fashion"])
    }

    func testIDXPathWithLabelsBesideAndTestSibling() throws {
        let dir = try makeScratchDirectory(self)
        let trainPixels = (0 ..< 2 * 9).map { UInt8($0 * 10) }
        try Gzip.write(IDX.encodeImages(trainPixels, count: 2, height: 3, width: 3), to: dir.appendingPathComponent("train-images-idx3-ubyte.gz"))
        try Gzip.write(IDX.encodeLabels([4, 2]), to: dir.appendingPathComponent("train-labels-idx1-ubyte.gz"))
        try Gzip.write(IDX.encodeImages([UInt8](repeating: 255, count: 9), count: 1, height: 3, width: 3),
                       to: dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"))
        let path = dir.appendingPathComponent("train-images-idx3-ubyte.gz").path
        let train = try DatasetCatalog.load(path, split: .train, dataDirectory: dir)
        XCTAssertEqual(train.count, 2)
        XCTAssertEqual(train.labels, [4, 2])
        let test = try DatasetCatalog.load(path, split: .test, dataDirectory: dir)
        XCTAssertEqual(test.count, 1)
        XCTAssertNil(test.labels)  // no t10k labels file: unlabeled

        // Pixels map to [-1, 1]: 0 -> -1, 255 -> 1.
        var out = [Float](repeating: 0, count: 9)
        train.image(0, into: &out)
        XCTAssertEqual(out[0], -1)
        XCTAssertEqual(out[1], 10 / 127.5 - 1, accuracy: 1e-6)
        test.image(0, into: &out)
        XCTAssertEqual(out, [Float](repeating: 1, count: 9))
    }

    func testImageLabelCountMismatch() throws {
        let dir = try makeScratchDirectory(self)
        try Gzip.write(IDX.encodeImages([UInt8](repeating: 1, count: 27), count: 3, height: 3, width: 3),
                       to: dir.appendingPathComponent("train-images-idx3-ubyte.gz"))
        try Gzip.write(IDX.encodeLabels([1, 2]), to: dir.appendingPathComponent("train-labels-idx1-ubyte.gz"))
        let path = dir.appendingPathComponent("train-images-idx3-ubyte.gz").path
        assertDatasetError(try DatasetCatalog.load(path, split: .train, dataDirectory: dir),
                           mentions: ["train-images-idx3-ubyte.gz", "3 images", "train-labels-idx1-ubyte.gz", "2 labels"])
        // Without a t10k sibling, the test split of a train file is an error that says what to pass instead.
        assertDatasetError(try DatasetCatalog.load(path, split: .test, dataDirectory: dir), mentions: [path, "test"])
    }

    func testCSVPathSplitsPerLabel() throws {
        let dir = try makeScratchDirectory(self)
        // 10 rows of label 0 then 5 of label 1 (1x1 images whose pixel is the row number).
        let rows = (0 ..< 15).map { "\($0),\($0 < 10 ? 0 : 1)" }.joined(separator: "\n")
        let url = dir.appendingPathComponent("tiny.csv")
        try rows.write(to: url, atomically: true, encoding: .utf8)
        let train = try DatasetCatalog.load(url.path, split: .train, dataDirectory: dir)
        let test = try DatasetCatalog.load(url.path, split: .test, dataDirectory: dir)
        XCTAssertEqual(train.pixels, [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13])
        XCTAssertEqual(test.pixels, [8, 9, 14])
        XCTAssertEqual(test.labels, [0, 0, 1])
    }
}
