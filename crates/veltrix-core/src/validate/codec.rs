//! The four codecs Kafka compresses records with, read as streams.
//!
//! Each compressed batch is read through its codec's decoder into a fixed
//! window ([`WINDOW_BYTES`]) that the record walker consumes; nothing holds the
//! decompressed records. What the decoders themselves keep is bounded too: 32
//! KiB for gzip, the frame's block size (at most 4 MiB) for lz4, the window the
//! frame declares for zstd (capped at [`ZSTD_WINDOW_LOG_MAX`]), and one block at
//! a time for snappy, whose declared length is checked against what its
//! compressed bytes could possibly hold before it is allocated.
//!
//! Snappy comes in Kafka's two forms: the xerial framing written by the Java
//! client and librdkafka (a 16-byte header, then length-prefixed raw blocks),
//! and plain raw snappy, which Kafka also reads.
//!
//! [`Compressor`] writes records back with a codec, for the duplicate filter,
//! which re-encodes a batch without some of its records: the codecs' default
//! levels, and snappy in the form the batch came in, so that every client that
//! read the producer's batch reads the filtered one.

use std::fmt;
use std::io::{self, Read};

use veltrix_log::batch::BatchHeader;

use super::records::{self, Reading, Seen, SliceSource, Source, Stamps};
use super::{DECOMPRESSED_BATCH_BYTES_MAX, InvalidBatch};

/// The window decompressed bytes pass through on their way to the walker.
const WINDOW_BYTES: usize = 64 << 10;

/// Largest zstd window (as a power of two) a batch may ask for: 16 MiB, the
/// window of compression levels up to 19. Without a cap the decoder allocates
/// whatever the frame header declares, up to 2 GiB.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The first bytes of xerial's snappy framing: a marker and the format name.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// The framing's header: the magic and two 4-byte version numbers.
const XERIAL_HEADER_BYTES: usize = 16;
/// Snappy's best case: a 3-byte copy element that produces 64 bytes, about 21
/// times its size. A block that claims more than this many times its compressed
/// length (plus its length prefix) is garbage, and is refused unallocated.
const SNAPPY_EXPANSION_MAX: u64 = 22;

/// Records gathered for one xerial snappy block: the Java client's default
/// block size.
const XERIAL_BLOCK_BYTES: usize = 32 << 10;

/// A batch's compression codec (the low three bits of its attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec with Kafka's id, `None` for the undefined ids 5 to 7.
    pub fn from_id(id: u8) -> Option<Codec> {
        Some(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return None,
        })
    }
}

impl Codec {
    /// The codec a batch's attributes name; an undefined one is refused.
    pub fn of(header: &BatchHeader) -> Result<Codec, InvalidBatch> {
        let id = header.compression();
        Codec::from_id(id).ok_or(InvalidBatch::UnknownCompression { codec: id })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::None => "uncompressed",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        })
    }
}

/// Walks the records of a batch whose records (after the fixed header) are
/// `payload`, compressed with `codec`, as [`records::walk`] does.
pub(super) fn walk(
    codec: Codec,
    payload: &[u8],
    header: &BatchHeader,
    reading: &Reading<'_>,
    visit: &mut impl FnMut(Seen<'_>) -> Result<(), InvalidBatch>,
) -> Result<Stamps, InvalidBatch> {
    let broken = |e: io::Error| InvalidBatch::Decompression {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Codec::None => records::walk(&mut SliceSource::new(payload), header, reading, visit),
        Codec::Gzip => {
            // The buffered decoder gives back exactly the bytes it did not
            // use: bytes after the gzip stream are refused, since decoders that
            // read one stream and insist on its end (kafka-protocol's) fail
            // on them, and a consumer would be stuck on the batch.
            let decoder = flate2::bufread::GzDecoder::new(payload);
            let (stamps, decoder) = streamed(codec, decoder, header, reading, visit)?;
            let rest = decoder.into_inner();
            if !rest.is_empty() {
                return Err(broken(io::Error::other(format!(
                    "{} bytes after the end of the gzip stream",
                    rest.len()
                ))));
            }
            Ok(stamps)
        }
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(payload).map_err(broken)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(broken)?;
            streamed(codec, decoder, header, reading, visit).map(|(s, _)| s)
        }
        Codec::Lz4 => {
            let decoder = lz4::Decoder::new(payload).map_err(broken)?;
            let (stamps, decoder) = streamed(codec, decoder, header, reading, visit)?;
            // The decoder reports the end of its input as the end of the data,
            // even mid-frame; only `finish` tells a whole frame from a cut one.
            decoder.finish().1.map_err(broken)?;
            Ok(stamps)
        }
        Codec::Snappy => streamed(codec, SnappyReader::new(payload), header, reading, visit).map(|(s, _)| s),
    }
}

/// Walks the records `reader` decompresses; returns the reader for checks at
/// the end of its stream.
fn streamed<R: Read>(
    codec: Codec,
    reader: R,
    header: &BatchHeader,
    reading: &Reading<'_>,
    visit: &mut impl FnMut(Seen<'_>) -> Result<(), InvalidBatch>,
) -> Result<(Stamps, R), InvalidBatch> {
    let mut src = StreamSource {
        reader,
        codec,
        window: vec![0; WINDOW_BYTES].into_boxed_slice(),
        start: 0,
        end: 0,
        pulled: 0,
        ended: false,
    };
    let stamps = records::walk(&mut src, header, reading, visit)?;
    Ok((stamps, src.reader))
}

/// A decompressing reader seen through a fixed window, refusing to produce more
/// than [`DECOMPRESSED_BATCH_BYTES_MAX`] bytes.
struct StreamSource<R> {
    reader: R,
    codec: Codec,
    window: Box<[u8]>,
    /// Unconsumed bytes are `window[start..end]`.
    start: usize,
    end: usize,
    /// Bytes read from the decoder so far.
    pulled: u64,
    /// The decoder reported the end of its data.
    ended: bool,
}

impl<R: Read> StreamSource<R> {
    /// Refills the window if it is empty; `false` at the end of the data.
    fn fill(&mut self) -> Result<bool, InvalidBatch> {
        if self.start < self.end {
            return Ok(true);
        }
        if self.ended {
            return Ok(false);
        }
        // One byte past the limit is asked for, to tell "exactly at the limit"
        // from "over it".
        let allowed = (DECOMPRESSED_BATCH_BYTES_MAX + 1 - self.pulled).min(self.window.len() as u64) as usize;
        let n = loop {
            match self.reader.read(&mut self.window[..allowed]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(InvalidBatch::Decompression {
                        codec: self.codec,
                        reason: e.to_string(),
                    });
                }
            }
        };
        self.pulled += n as u64;
        if self.pulled > DECOMPRESSED_BATCH_BYTES_MAX {
            return Err(InvalidBatch::DecompressedTooLarge {
                codec: self.codec,
                bytes_max: DECOMPRESSED_BATCH_BYTES_MAX,
            });
        }
        self.start = 0;
        self.end = n;
        self.ended = n == 0;
        Ok(n > 0)
    }
}

impl<R: Read> Source for StreamSource<R> {
    #[inline]
    fn next_byte(&mut self) -> Result<Option<u8>, InvalidBatch> {
        if !self.fill()? {
            return Ok(None);
        }
        let byte = self.window[self.start];
        self.start += 1;
        Ok(Some(byte))
    }

    fn skip(&mut self, mut n: u64) -> Result<bool, InvalidBatch> {
        while n > 0 {
            if !self.fill()? {
                return Ok(false);
            }
            let step = n.min((self.end - self.start) as u64);
            self.start += step as usize;
            n -= step;
        }
        Ok(true)
    }

    fn copy_into(&mut self, mut n: u64, out: &mut Vec<u8>) -> Result<bool, InvalidBatch> {
        while n > 0 {
            if !self.fill()? {
                return Ok(false);
            }
            let step = n.min((self.end - self.start) as u64) as usize;
            out.extend_from_slice(&self.window[self.start..self.start + step]);
            self.start += step;
            n -= step as u64;
        }
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.pulled - (self.end - self.start) as u64
    }

    fn at_end(&mut self) -> Result<bool, InvalidBatch> {
        Ok(!self.fill()?)
    }
}

/// Snappy, xerial-framed or raw, decompressed one block at a time.
struct SnappyReader<'a> {
    /// Compressed bytes not yet decompressed.
    rest: &'a [u8],
    xerial: bool,
    /// The current decompressed block, served from `at`.
    block: Vec<u8>,
    at: usize,
    decoder: snap::raw::Decoder,
}

impl<'a> SnappyReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        let xerial = data.len() >= XERIAL_HEADER_BYTES && data.starts_with(XERIAL_MAGIC);
        SnappyReader {
            rest: if xerial { &data[XERIAL_HEADER_BYTES..] } else { data },
            xerial,
            block: Vec::new(),
            at: 0,
            decoder: snap::raw::Decoder::new(),
        }
    }

    /// Decompresses the next block into `block`; `false` when none is left.
    fn next_block(&mut self) -> io::Result<bool> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snappy: {what}"));
        if self.rest.is_empty() {
            return Ok(false);
        }
        let compressed = if self.xerial {
            let (len, after) = self
                .rest
                .split_first_chunk::<4>()
                .ok_or_else(|| bad("truncated block length"))?;
            let len = u32::from_be_bytes(*len) as usize;
            let block = after.get(..len).ok_or_else(|| bad("truncated block"))?;
            self.rest = &after[len..];
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let len = snap::raw::decompress_len(compressed).map_err(|e| bad(&e.to_string()))?;
        let possible = (compressed.len() as u64).saturating_mul(SNAPPY_EXPANSION_MAX);
        if len as u64 > possible.min(DECOMPRESSED_BATCH_BYTES_MAX + 1) {
            return Err(bad(&format!(
                "a block of {} bytes claims to decompress to {len}",
                compressed.len()
            )));
        }
        self.block.clear();
        self.block.resize(len, 0);
        let written = self
            .decoder
            .decompress(compressed, &mut self.block)
            .map_err(|e| bad(&e.to_string()))?;
        self.block.truncate(written);
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Records compressed with a batch's codec as they are written, appended to
/// the bytes the compressor was given (the batch's header).
pub(crate) enum Compressor {
    None(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Lz4(lz4::Encoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    /// Snappy compresses whole blocks: records gather in `block` first (the
    /// whole payload for raw snappy, which is one block).
    Snappy {
        out: Vec<u8>,
        xerial: bool,
        block: Vec<u8>,
    },
}

impl Compressor {
    /// A compressor with `codec` appending to `out`. `like` is the payload of
    /// the batch being re-encoded: its snappy framing (xerial's header, with
    /// its version numbers, or none) is kept.
    pub(crate) fn new(codec: Codec, like: &[u8], mut out: Vec<u8>) -> io::Result<Compressor> {
        Ok(match codec {
            Codec::None => Compressor::None(out),
            Codec::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(out, flate2::Compression::default())),
            Codec::Lz4 => Compressor::Lz4(
                // Independent blocks, as the Java client and kafka-protocol write them.
                lz4::EncoderBuilder::new()
                    .block_mode(lz4::BlockMode::Independent)
                    .build(out)?,
            ),
            Codec::Zstd => Compressor::Zstd(zstd::stream::write::Encoder::new(out, 0)?),
            Codec::Snappy => {
                let xerial = like.len() >= XERIAL_HEADER_BYTES && like.starts_with(XERIAL_MAGIC);
                if xerial {
                    out.extend_from_slice(&like[..XERIAL_HEADER_BYTES]);
                }
                Compressor::Snappy {
                    out,
                    xerial,
                    block: Vec::new(),
                }
            }
        })
    }

    /// The compressed records after the bytes `out` held.
    pub(crate) fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Compressor::None(out) => Ok(out),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Lz4(e) => {
                let (out, result) = e.finish();
                result.map(|()| out)
            }
            Compressor::Zstd(e) => e.finish(),
            Compressor::Snappy { mut out, xerial, block } => {
                // An empty raw payload is one empty block, never no bytes:
                // decoders refuse an empty snappy stream.
                if !block.is_empty() || !xerial {
                    snappy_block(&mut out, xerial, &block)?;
                }
                Ok(out)
            }
        }
    }
}

/// Appends `data` compressed as one raw snappy block, with xerial's length
/// prefix if `xerial`.
fn snappy_block(out: &mut Vec<u8>, xerial: bool, data: &[u8]) -> io::Result<()> {
    let compressed = snap::raw::Encoder::new().compress_vec(data).map_err(io::Error::other)?;
    if xerial {
        let len = u32::try_from(compressed.len()).map_err(io::Error::other)?;
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&compressed);
    Ok(())
}

impl io::Write for Compressor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(out) => out.write(data),
            Compressor::Gzip(e) => e.write(data),
            Compressor::Lz4(e) => e.write(data),
            Compressor::Zstd(e) => e.write(data),
            Compressor::Snappy { out, xerial, block } => {
                block.extend_from_slice(data);
                if *xerial && block.len() >= XERIAL_BLOCK_BYTES {
                    snappy_block(out, true, block)?;
                    block.clear();
                }
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
