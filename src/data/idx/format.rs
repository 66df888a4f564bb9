//! The IDX format itself: header, magic numbers, dimensions and the
//! bounded (optionally gzip-compressed) data, with errors that give the
//! byte offset.

use std::io::Read;
use std::path::Path;

use super::{IMAGES_MAGIC, LABELS_MAGIC, MAX_DATA_BYTES};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IMAGES_MAGIC,
            Kind::Labels => LABELS_MAGIC,
        }
    }
    fn ndims(self) -> usize {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Kind::Images => "unsigned-byte images, 3 dimensions: count, rows, cols",
            Kind::Labels => "unsigned-byte labels, 1 dimension: count",
        }
    }
    fn header_len(self) -> usize {
        4 + 4 * self.ndims()
    }
}

pub(super) struct Parsed {
    pub(super) dims: Vec<usize>,
    pub(super) header_len: usize,
    pub(super) data: Vec<u8>,
    gzip: bool,
}

impl Parsed {
    pub(super) fn gzip_note(&self) -> &'static str {
        if self.gzip {
            " (offset in the decompressed stream)"
        } else {
            ""
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub(super) fn parse(bytes: &[u8], name: &Path, kind: Kind) -> Result<Parsed> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
        // The header first: at most header_len bytes.
        let mut header = Vec::with_capacity(kind.header_len());
        read_bounded(&mut decoder, &mut header, kind.header_len() as u64, name)?;
        let (dims, size) = parse_header(&header, name, kind, true)?;
        // Then the data: never more than the implied size plus one byte.
        let mut data = Vec::new();
        read_bounded(&mut decoder, &mut data, size + 1, name).map_err(|e| match e {
            Error::Format { path, offset, message } => Error::Format {
                path,
                offset: offset + kind.header_len() as u64,
                message,
            },
            other => other,
        })?;
        check_data_len(data.len() as u64, size, kind, &dims, name, true)?;
        Ok(Parsed {
            dims,
            header_len: kind.header_len(),
            data,
            gzip: true,
        })
    } else {
        let header = &bytes[..bytes.len().min(kind.header_len())];
        let (dims, size) = parse_header(header, name, kind, false)?;
        let body = &bytes[kind.header_len()..];
        check_data_len(body.len() as u64, size, kind, &dims, name, false)?;
        Ok(Parsed {
            dims,
            header_len: kind.header_len(),
            data: body.to_vec(),
            gzip: false,
        })
    }
}

/// Decompresses at most `limit` bytes into `out`; a gzip error is an
/// [`Error::Format`] at the decompressed offset reached so far.
fn read_bounded(decoder: &mut impl Read, out: &mut Vec<u8>, limit: u64, name: &Path) -> Result<()> {
    let mut bounded = decoder.take(limit);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match bounded.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(k) => out.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::format(
                    name,
                    out.len() as u64,
                    format!("corrupt or truncated gzip stream: {e} (offset in the decompressed stream)"),
                ))
            }
        }
    }
}

/// Checks magic and dimensions; returns the dimensions and the data size
/// they imply (already checked against [`MAX_DATA_BYTES`]).
fn parse_header(header: &[u8], name: &Path, kind: Kind, gzip: bool) -> Result<(Vec<usize>, u64)> {
    let note = if gzip {
        " (offset in the decompressed stream)"
    } else {
        ""
    };
    if header.len() < 4 {
        return Err(Error::format(
            name,
            header.len() as u64,
            format!(
                "truncated IDX header: the file ends after {} bytes, expected the 4-byte magic 0x{:08X} ({}){note}",
                header.len(),
                kind.magic(),
                kind.describe()
            ),
        ));
    }
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic != kind.magic() {
        let hint = match magic {
            IMAGES_MAGIC => ": this is an images file",
            LABELS_MAGIC => ": this is a labels file",
            _ => "",
        };
        return Err(Error::format(
            name,
            0,
            format!(
                "bad IDX magic 0x{magic:08X}: expected 0x{:08X} ({}){hint}",
                kind.magic(),
                kind.describe()
            ),
        ));
    }
    if header.len() < kind.header_len() {
        return Err(Error::format(
            name,
            header.len() as u64,
            format!(
                "truncated IDX header: the file ends after {} bytes, expected a {}-byte header ({}){note}",
                header.len(),
                kind.header_len(),
                kind.describe()
            ),
        ));
    }
    let dims: Vec<usize> = header[4..kind.header_len()]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if kind == Kind::Images {
        for (i, what) in [(1, "rows"), (2, "cols")] {
            if dims[i] == 0 {
                return Err(Error::format(
                    name,
                    (4 + 4 * i) as u64,
                    format!("image {what} is 0: expected at least 1"),
                ));
            }
        }
    }
    let size = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    match size {
        Some(s) if s <= MAX_DATA_BYTES => Ok((dims, s)),
        _ => Err(Error::format(
            name,
            4,
            format!(
                "header dimensions {} imply more than {MAX_DATA_BYTES} data bytes, the most this reader accepts",
                dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ")
            ),
        )),
    }
}

fn check_data_len(found: u64, size: u64, kind: Kind, dims: &[usize], name: &Path, gzip: bool) -> Result<()> {
    let note = if gzip {
        " (offset in the decompressed stream)"
    } else {
        ""
    };
    let header_len = kind.header_len() as u64;
    let what = match kind {
        Kind::Images => format!("{} images of {} x {}", dims[0], dims[1], dims[2]),
        Kind::Labels => format!("{} labels", dims[0]),
    };
    if found < size {
        let per = size / (dims[0].max(1) as u64);
        let sample = found.checked_div(per).unwrap_or(0);
        return Err(Error::format(
            name,
            header_len + found,
            format!(
                "truncated: the header declares {what} = {size} bytes after the {header_len}-byte header, \
                 but the file ends after {found} (sample {sample} is incomplete){note}"
            ),
        ));
    }
    if found > size {
        let extra = if gzip {
            "more data".to_string()
        } else {
            format!("{} extra bytes", found - size)
        };
        return Err(Error::format(
            name,
            header_len + size,
            format!("oversized: {extra} after the {what} ({size} bytes) the header declares{note}"),
        ));
    }
    Ok(())
}
