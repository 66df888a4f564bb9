//! The HTTP(S) download itself, bounded in size and time, and the MD5 check.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use md5::{Digest, Md5};

use super::{CONNECT_TIMEOUT, MAX_DOWNLOAD_BYTES, READ_TIMEOUT, TOTAL_TIMEOUT};
use crate::{Error, Result};

fn download_error(url: &str, message: impl Into<String>) -> Error {
    Error::Download {
        url: url.to_owned(),
        message: message.into(),
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` into the existing file `dest`, bounded in size and time,
/// and checks its MD5 against `expected`.
pub(super) fn download(url: &str, dest: &Path, expected: &str) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| download_error(url, format!("request failed: {e}")))?;
    let status = response.status();
    if status != ureq::http::StatusCode::OK {
        return Err(download_error(
            url,
            format!("the server answered HTTP {status}, expected 200 OK"),
        ));
    }
    let length = response
        .headers()
        .get(ureq::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = length.filter(|&n| n > MAX_DOWNLOAD_BYTES) {
        return Err(download_error(
            url,
            format!("the archive is {length} bytes, above the limit of {MAX_DOWNLOAD_BYTES}"),
        ));
    }

    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| Error::io(dest, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(download_error(
                    url,
                    format!("reading the response failed after {received} bytes: {e}"),
                ))
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        received += n as u64;
    }
    if let Some(length) = length.filter(|&n| n != received) {
        return Err(download_error(
            url,
            format!("received {received} bytes, but the server announced {length}"),
        ));
    }
    file.sync_all().map_err(|e| Error::io(dest, e))?;

    let actual = hex(&hasher.finalize());
    if actual != expected {
        return Err(download_error(
            url,
            format!("MD5 checksum mismatch: expected {expected}, got {actual} ({received} bytes received)"),
        ));
    }
    Ok(())
}

/// MD5 of a local file, lower-case hex.
pub(super) fn md5_of_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(hex(&hasher.finalize()))
}
