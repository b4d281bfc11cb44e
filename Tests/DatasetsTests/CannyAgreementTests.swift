// Agreement with OpenCV: cv2.Canny(img, 100, 200) edge maps (opencv-python-headless, stored bit-packed by
// scripts/fixtures/make_canny_fixtures.py) for all 5,000 MNIST-5k images and the 10,000 Fashion-MNIST test images.
import Datasets
import XCTest

final class CannyAgreementTests: XCTestCase {
    /// Bit-identical image fraction and edge-pixel F1 of our Canny against the stored OpenCV edges.
    private func agreement(set: String) throws -> (identical: Double, f1: Double, images: Int) {
        let images = try IDX.readImages(Fixtures.url("canny/\(set)-images-idx3-ubyte.gz"))
        let reference = try Fixtures.readEdges(Fixtures.url("canny/\(set)-canny-100-200.edges.gz"))
        XCTAssertEqual(images.count, reference.count)
        XCTAssertEqual(images.height, reference.height)
        XCTAssertEqual(images.width, reference.width)
        let n = images.height * images.width
        var identical = 0, truePositive = 0, falsePositive = 0, falseNegative = 0
        var ours = [UInt8](repeating: 0, count: n)
        images.pixels.withUnsafeBufferPointer { px in
            for i in 0 ..< images.count {
                Canny.edges(px.baseAddress! + i * n, height: images.height, width: images.width,
                            low: Double(reference.low), high: Double(reference.high), into: &ours)
                var same = true
                for k in 0 ..< n {
                    let a = ours[k] != 0, b = reference.edges[i * n + k] != 0
                    if a && b { truePositive += 1 } else if a { falsePositive += 1 } else if b { falseNegative += 1 }
                    if a != b { same = false }
                }
                if same { identical += 1 }
            }
        }
        let f1 = 2 * Double(truePositive) / Double(2 * truePositive + falsePositive + falseNegative)
        print("Canny vs OpenCV on \(set): \(identical)/\(images.count) images bit-identical "
            + "(\(String(format: "%.2f", 100 * Double(identical) / Double(images.count)))%), edge F1 "
            + "\(String(format: "%.6f", f1)) (TP \(truePositive), FP \(falsePositive), FN \(falseNegative))")
        return (Double(identical) / Double(images.count), f1, images.count)
    }

    func testMNIST5kMatchesOpenCV() throws {
        let r = try agreement(set: "mnist5k")
        XCTAssertEqual(r.images, 5000)
        XCTAssertGreaterThanOrEqual(r.identical, 0.99)
        XCTAssertGreaterThanOrEqual(r.f1, 0.999)
    }

    func testFashionTestSetMatchesOpenCV() throws {
        let r = try agreement(set: "fashion-t10k")
        XCTAssertEqual(r.images, 10000)
        XCTAssertGreaterThanOrEqual(r.identical, 0.99)
        XCTAssertGreaterThanOrEqual(r.f1, 0.999)
    }

    /// The stored inputs are the real datasets: when the originals are on this machine they must be byte-equal.
    func testFixtureInputsAreTheRealImages() throws {
        let fashion = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
        if FileManager.default.fileExists(atPath: fashion.path) {
            let original = try IDX.readImages(fashion)
            let stored = try IDX.readImages(Fixtures.url("canny/fashion-t10k-images-idx3-ubyte.gz"))
            XCTAssertEqual(original.pixels, stored.pixels)
        }
        let data = Fixtures.repositoryRoot.appendingPathComponent("data")
        if FileManager.default.fileExists(atPath: data.appendingPathComponent("mnist_5k.csv.gz").path) {
            let csv = try CSVImages.read(data.appendingPathComponent("mnist_5k.csv.gz"))
            let stored = try IDX.readImages(Fixtures.url("canny/mnist5k-images-idx3-ubyte.gz"))
            XCTAssertEqual(csv.pixels, stored.pixels)
        }
    }
}
