//! Tests of `data::download` against a tiny HTTP server on 127.0.0.1 that
//! serves small archives in the official CIFAR-10 layout, built here.
#![cfg(feature = "download")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use ntk_momentum::data::{cifar10, download};
use ntk_momentum::Error;

// ------------------------------------------------------------------ helpers

/// A temporary directory under `std::env::temp_dir()`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ntk-momentum-download-test-{}-{tag}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    /// The cache directory used by the test (created by the downloader).
    fn cache(&self) -> PathBuf {
        self.0.join("cache")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Names in a directory, sorted (empty if it does not exist).
fn listing(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `labels.len()` CIFAR-10 records with a pattern that depends on `seed`.
fn records(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        out.push(label);
        out.extend((0..cifar10::PIXELS_PER_RECORD).map(|j| (j as u8).wrapping_mul(7).wrapping_add(seed + i as u8)));
    }
    out
}

/// One tar entry: raw name bytes (so that `..` and absolute paths can be
/// written), type, data and, for links, the target.
struct Entry<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name: name.as_bytes(),
        kind: tar::EntryType::Regular,
        data,
        link: None,
    }
}

fn dir_entry() -> Entry<'static> {
    Entry {
        name: b"cifar-10-batches-bin/",
        kind: tar::EntryType::Directory,
        data: b"",
        link: None,
    }
}

/// A gzip-compressed tar of `entries`, in order.
fn targz(entries: &[Entry]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..entry.name.len()].copy_from_slice(entry.name);
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        header.set_mode(if entry.kind.is_dir() { 0o755 } else { 0o644 });
        if let Some(link) = entry.link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// The official layout, small: 3 training records, 2 test records.
struct Official {
    train: Vec<u8>,
    test: Vec<u8>,
    archive: Vec<u8>,
}

fn official() -> Official {
    let train = records(&[0, 8, 9], 1);
    let test = records(&[3, 5], 2);
    let archive = targz(&[
        dir_entry(),
        file("cifar-10-batches-bin/data_batch_1.bin", &train),
        file("cifar-10-batches-bin/test_batch.bin", &test),
        file("cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\n"),
        file("cifar-10-batches-bin/readme.html", b"<html></html>\n"),
    ]);
    Official { train, test, archive }
}

// -------------------------------------------------------------- the server

enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// 200 announcing this body's length, sending half of it, then closing.
    Truncated(Vec<u8>),
    /// 200 announcing a body of this many bytes, sending none of it.
    Announce(u64),
}

/// A tiny HTTP/1.1 server on 127.0.0.1 (port 0) in a thread: serves at most
/// `max_requests` requests, each connection with short timeouts, and stops
/// after 60 s or when dropped. Unknown paths get 404.
struct Server {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(routes: Vec<(&'static str, Reply)>, max_requests: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut served = 0;
                while served < max_requests && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            served += 1;
                            requests.fetch_add(1, Ordering::SeqCst);
                            let _ = serve(stream, &routes);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Server {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, routes: &[(&'static str, Reply)]) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    // Read the request head (bounded).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    match routes.iter().find(|(p, _)| *p == path).map(|(_, r)| r) {
        Some(Reply::Body(body)) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
        Some(Reply::Truncated(body)) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body[..body.len() / 2])?;
        }
        Some(Reply::Announce(length)) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            )?;
        }
        None => {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")?;
        }
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}

/// A URL on the loopback interface where nothing listens: any attempt to
/// use the network fails.
const UNREACHABLE: &str = "http://127.0.0.1:1/cifar-10-binary.tar.gz";

// ------------------------------------------------------------------- tests

#[test]
fn downloads_verifies_unpacks_and_reuses_the_cache() {
    let data = official();
    let md5 = md5_hex(&data.archive);
    let server = Server::start(vec![("/cifar-10-binary.tar.gz", Reply::Body(data.archive.clone()))], 4);
    let tmp = TempDir::new("ok");
    let cache = tmp.cache();

    let dir = download::cifar10_from(&server.url("/cifar-10-binary.tar.gz"), &md5, &cache).unwrap();
    assert_eq!(dir, cache.join(cifar10::ARCHIVE_DIR));
    assert_eq!(server.requests(), 1);

    // Read back through the readers.
    let train = cifar10::read_train(&dir).unwrap();
    assert_eq!(train.labels(), &[0, 8, 9]);
    assert_eq!(cifar10::to_bytes(&train).unwrap(), data.train);
    let test = cifar10::read_test(&dir).unwrap();
    assert_eq!(test.labels(), &[3, 5]);
    assert_eq!(cifar10::to_bytes(&test).unwrap(), data.test);
    assert_eq!(cifar10::read_train(&cache).unwrap().len(), 3); // the parent works too

    // The cache holds the unpacked directory only; the marker holds the MD5.
    assert_eq!(listing(&cache), [cifar10::ARCHIVE_DIR]);
    assert_eq!(
        listing(&dir),
        [
            ".complete",
            "batches.meta.txt",
            "data_batch_1.bin",
            "readme.html",
            "test_batch.bin"
        ]
    );
    assert_eq!(std::fs::read_to_string(dir.join(download::MARKER)).unwrap().trim(), md5);
    assert_eq!(
        std::fs::read_to_string(dir.join("batches.meta.txt")).unwrap(),
        "airplane\nautomobile\n"
    );

    // Second call: reused, no new request (the digest in upper case is the same digest).
    let again = download::cifar10_from(&server.url("/cifar-10-binary.tar.gz"), &md5.to_uppercase(), &cache).unwrap();
    assert_eq!(again, dir);
    assert_eq!(server.requests(), 1);
    // And without any network at all.
    assert_eq!(download::cifar10_from(UNREACHABLE, &md5, &cache).unwrap(), dir);
    assert_eq!(server.requests(), 1);
}

#[test]
fn wrong_checksum_is_rejected_and_leaves_nothing() {
    let data = official();
    let actual = md5_hex(&data.archive);
    let server = Server::start(vec![("/a.tar.gz", Reply::Body(data.archive))], 4);
    let tmp = TempDir::new("md5");
    let cache = tmp.cache();
    let url = server.url("/a.tar.gz");
    let wrong = "0123456789abcdef0123456789abcdef";

    let err = download::cifar10_from(&url, wrong, &cache).unwrap_err();
    let Error::Download { url: err_url, message } = &err else {
        panic!("expected Error::Download, got {err:?}");
    };
    assert_eq!(err_url, &url);
    assert!(message.contains(wrong) && message.contains(&actual), "{message}");
    let shown = err.to_string();
    assert!(
        shown.contains(&url) && shown.contains(wrong) && shown.contains(&actual),
        "{shown}"
    );
    assert_eq!(server.requests(), 1);
    // Nothing half-written: no temporary file, no partial directory.
    assert_eq!(listing(&cache), Vec::<String>::new());

    // The official entry point names the official URL and digest.
    assert_eq!(download::URL, "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
    assert_eq!(download::MD5, "c32a1d4ab5d03f1284b67883e8d87530");
}

#[test]
fn http_errors_and_truncated_bodies_are_errors() {
    let data = official();
    let md5 = md5_hex(&data.archive);
    let server = Server::start(
        vec![
            ("/cut.tar.gz", Reply::Truncated(data.archive)),
            ("/huge.tar.gz", Reply::Announce(download::MAX_DOWNLOAD_BYTES + 1)),
        ],
        4,
    );
    let tmp = TempDir::new("http");
    let cache = tmp.cache();

    let url = server.url("/missing.tar.gz");
    let err = download::cifar10_from(&url, &md5, &cache).unwrap_err();
    assert!(matches!(&err, Error::Download { .. }), "{err:?}");
    assert!(
        err.to_string().contains("404") && err.to_string().contains(&url),
        "{err}"
    );
    assert_eq!(listing(&cache), Vec::<String>::new());

    let url = server.url("/cut.tar.gz");
    let err = download::cifar10_from(&url, &md5, &cache).unwrap_err();
    assert!(matches!(&err, Error::Download { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(listing(&cache), Vec::<String>::new());

    // Larger than the limit: refused from the header, before any byte is stored.
    let url = server.url("/huge.tar.gz");
    let err = download::cifar10_from(&url, &md5, &cache).unwrap_err();
    assert!(matches!(&err, Error::Download { .. }), "{err:?}");
    assert!(err.to_string().contains("above the limit"), "{err}");
    assert_eq!(listing(&cache), Vec::<String>::new());

    // No server at all.
    let err = download::cifar10_from(UNREACHABLE, &md5, &cache).unwrap_err();
    assert!(matches!(&err, Error::Download { .. }), "{err:?}");
    assert_eq!(listing(&cache), Vec::<String>::new());
    assert_eq!(server.requests(), 3);
}

#[test]
fn unsafe_or_unexpected_entries_are_rejected() {
    let train = records(&[1, 2], 3);
    let test = records(&[4], 4);
    let ok_train = file("cifar-10-batches-bin/data_batch_1.bin", &train);
    let ok_test = || file("cifar-10-batches-bin/test_batch.bin", &test);
    let link = |kind, target| Entry {
        name: b"cifar-10-batches-bin/data_batch_2.bin",
        kind,
        data: b"",
        link: Some(target),
    };
    let cases: Vec<(&'static str, Vec<u8>, &str)> = vec![
        (
            "/traversal",
            targz(&[dir_entry(), ok_train, ok_test(), file("../evil", b"gotcha")]),
            "path traversal",
        ),
        (
            "/traversal-inside",
            targz(&[dir_entry(), ok_test(), file("cifar-10-batches-bin/../../evil", b"x")]),
            "path traversal",
        ),
        (
            "/absolute",
            targz(&[dir_entry(), ok_test(), file("/tmp/evil", b"x")]),
            "path traversal",
        ),
        (
            "/symlink",
            targz(&[
                dir_entry(),
                ok_test(),
                link(tar::EntryType::Symlink, "../../../etc/passwd"),
            ]),
            "Symlink",
        ),
        (
            "/hardlink",
            targz(&[dir_entry(), ok_test(), link(tar::EntryType::Link, "test_batch.bin")]),
            "Link",
        ),
        (
            "/other-name",
            targz(&[dir_entry(), ok_test(), file("cifar-10-batches-bin/notes.txt", b"x")]),
            "unexpected",
        ),
        (
            "/other-dir",
            targz(&[
                dir_entry(),
                ok_test(),
                file("cifar-10-batches-py/test_batch.bin", &test),
            ]),
            "unexpected",
        ),
        (
            "/duplicate",
            targz(&[dir_entry(), ok_test(), ok_test()]),
            "appears twice",
        ),
        (
            "/partial-record",
            targz(&[dir_entry(), file("cifar-10-batches-bin/test_batch.bin", &test[..100])]),
            "3073-byte",
        ),
        (
            "/no-test-batch",
            targz(&[dir_entry(), file("cifar-10-batches-bin/data_batch_1.bin", &train)]),
            "has no cifar-10-batches-bin/test_batch.bin",
        ),
        ("/not-gzip", b"this is not a gzip stream".to_vec(), "corrupt"),
    ];
    let n = cases.len();
    let routes = cases
        .iter()
        .map(|(path, archive, _)| (*path, Reply::Body(archive.clone())))
        .collect();
    let server = Server::start(routes, n);
    let tmp = TempDir::new("unsafe");
    let cache = tmp.cache();
    for (path, archive, needle) in &cases {
        let url = server.url(path);
        let err = download::cifar10_from(&url, &md5_hex(archive), &cache).unwrap_err();
        assert!(matches!(&err, Error::Format { .. }), "{path}: {err:?}");
        let shown = err.to_string();
        assert!(shown.contains(&url) && shown.contains(needle), "{path}: {shown}");
        assert_eq!(listing(&cache), Vec::<String>::new(), "{path}");
        assert!(!tmp.0.join("evil").exists() && !cache.join("evil").exists());
    }
    assert_eq!(server.requests(), n);
}

#[test]
fn an_archive_placed_in_the_cache_is_used_without_network() {
    let data = official();
    let md5 = md5_hex(&data.archive);
    let tmp = TempDir::new("local");
    let cache = tmp.cache();
    std::fs::create_dir_all(&cache).unwrap();
    let local = cache.join(download::ARCHIVE_FILE);

    // A placed archive with the wrong digest is an error naming it, and is left alone.
    std::fs::write(&local, b"not the archive").unwrap();
    let err = download::cifar10_from(UNREACHABLE, &md5, &cache).unwrap_err();
    assert!(matches!(&err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(download::ARCHIVE_FILE) && err.to_string().contains(&md5),
        "{err}"
    );
    assert_eq!(listing(&cache), [download::ARCHIVE_FILE]);

    std::fs::write(&local, &data.archive).unwrap();
    let dir = download::cifar10_from(UNREACHABLE, &md5, &cache).unwrap();
    assert_eq!(cifar10::read_test(&dir).unwrap().labels(), &[3, 5]);
    assert_eq!(listing(&cache), [cifar10::ARCHIVE_DIR, download::ARCHIVE_FILE]);
}

#[test]
fn a_directory_not_written_by_the_downloader_is_never_overwritten() {
    let data = official();
    let md5 = md5_hex(&data.archive);
    let tmp = TempDir::new("foreign");
    let cache = tmp.cache();
    let dir = cache.join(cifar10::ARCHIVE_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &data.test).unwrap();

    // No marker: an error, and the files stay.
    let err = download::cifar10_from(UNREACHABLE, &md5, &cache).unwrap_err();
    assert!(err.to_string().contains(".complete"), "{err}");
    assert_eq!(std::fs::read(dir.join("test_batch.bin")).unwrap(), data.test);

    // A marker for another archive: an error naming both digests.
    std::fs::write(dir.join(download::MARKER), "ffffffffffffffffffffffffffffffff\n").unwrap();
    let err = download::cifar10_from(UNREACHABLE, &md5, &cache).unwrap_err();
    assert!(
        err.to_string().contains(&md5) && err.to_string().contains("ffffffff"),
        "{err}"
    );
    assert_eq!(listing(&dir), [".complete", "test_batch.bin"]);
}

#[test]
fn a_malformed_digest_is_an_invalid_parameter() {
    let tmp = TempDir::new("digest");
    for bad in [
        "",
        "c32a1d4a",
        "c32a1d4ab5d03f1284b67883e8d8753g",
        "c32a1d4ab5d03f1284b67883e8d875300",
    ] {
        let err = download::cifar10_from(UNREACHABLE, bad, &tmp.cache()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidParameter { name: "md5_hex", .. }),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(listing(&tmp.cache()), Vec::<String>::new());
}
