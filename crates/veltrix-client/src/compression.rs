//! Bounded decompression of fetched record batches.
//!
//! kafka-protocol decompresses a batch into memory with no limit, so a small
//! compressed batch could expand to gigabytes. This module decompresses with
//! the same codecs, reading through a limit, and fails as soon as the output
//! would pass it. It is handed to the codec's decoder as its decompression hook.
//!
//! Snappy comes in Kafka's two forms: the xerial framing the Java client writes
//! (a 16-byte header, then length-prefixed raw blocks) and plain raw snappy,
//! which Java also reads. Raw snappy states its decompressed length up front, so
//! that limit is checked before anything is allocated.

use std::io::Read;

use kafka_protocol::records::Compression;

/// The first bytes of xerial's snappy framing: a marker and the format name.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// The framing's header: the magic and two 4-byte version numbers.
const XERIAL_HEADER_BYTES: usize = 16;

/// Decompresses `data` (records of one batch) to at most `bytes_max` bytes.
pub(crate) fn decompress(data: &[u8], compression: Compression, bytes_max: usize) -> Result<Vec<u8>, String> {
    let named = |e: std::io::Error| format!("{compression:?} decompression failed: {e}");
    match compression {
        Compression::None => {
            if data.len() > bytes_max {
                return Err(too_large(bytes_max));
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), bytes_max).map_err(named)?,
        Compression::Zstd => {
            read_bounded(zstd::stream::read::Decoder::new(data).map_err(named)?, bytes_max).map_err(named)?
        }
        Compression::Lz4 => {
            let mut decoder = lz4::Decoder::new(data).map_err(named)?;
            let out = read_bounded(&mut decoder, bytes_max).map_err(named)??;
            // The decoder reports the end of its input as the end of the data,
            // even mid-frame; only `finish` tells a whole frame from a cut one.
            decoder.finish().1.map_err(named)?;
            Ok(out)
        }
        Compression::Snappy => snappy(data, bytes_max),
    }
}

fn too_large(bytes_max: usize) -> String {
    format!("the records decompress to more than {bytes_max} bytes")
}

/// Reads `reader` to its end, failing (without reading further) past `bytes_max`.
fn read_bounded(reader: impl Read, bytes_max: usize) -> std::io::Result<Result<Vec<u8>, String>> {
    let mut out = Vec::new();
    let limit = u64::try_from(bytes_max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut out)?;
    if out.len() > bytes_max {
        return Ok(Err(too_large(bytes_max)));
    }
    Ok(Ok(out))
}

fn snappy(data: &[u8], bytes_max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if data.len() >= XERIAL_HEADER_BYTES && data.starts_with(XERIAL_MAGIC) {
        let mut rest = &data[XERIAL_HEADER_BYTES..];
        while !rest.is_empty() {
            let (len, after) = rest.split_first_chunk::<4>().ok_or("truncated snappy block length")?;
            let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| "snappy block too long")?;
            let block = after.get(..len).ok_or("truncated snappy block")?;
            snappy_block(block, &mut out, bytes_max)?;
            rest = &after[len..];
        }
    } else {
        snappy_block(data, &mut out, bytes_max)?;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its stated length first.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, bytes_max: usize) -> Result<(), String> {
    let len = snap::raw::decompress_len(block).map_err(|e| format!("snappy: {e}"))?;
    let start = out.len();
    if len > bytes_max.saturating_sub(start) {
        return Err(too_large(bytes_max));
    }
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| format!("snappy: {e}"))?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

    use super::*;

    fn compressed(compression: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
            b.extend_from_slice(data);
            Ok(())
        };
        match compression {
            Compression::None => out.extend_from_slice(data),
            Compression::Gzip => Gzip::compress(&mut out, fill).unwrap(),
            Compression::Snappy => Snappy::compress(&mut out, fill).unwrap(),
            Compression::Lz4 => Lz4::compress(&mut out, fill).unwrap(),
            Compression::Zstd => Zstd::compress(&mut out, fill).unwrap(),
        }
        out.to_vec()
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn what_the_codec_compresses_comes_back() {
        // More than one 32 KiB xerial snappy block.
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for c in ALL {
            assert_eq!(decompress(&compressed(c, &data), c, data.len()).unwrap(), data, "{c:?}");
        }
    }

    #[test]
    fn output_past_the_limit_is_refused() {
        // 4 MiB of zeros compresses to a few KiB.
        let data = vec![0u8; 4 << 20];
        for c in ALL {
            let small = compressed(c, &data);
            let e = decompress(&small, c, (4 << 20) - 1).unwrap_err();
            assert!(e.contains("more than"), "{c:?}: {e}");
        }
    }

    #[test]
    fn raw_snappy_is_read_too() {
        let data = b"raw snappy without the xerial framing".repeat(10);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(&raw, Compression::Snappy, 1 << 20).unwrap(), data);
        assert!(decompress(&raw, Compression::Snappy, 10).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for c in ALL.into_iter().skip(1) {
            assert!(decompress(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff", c, 1 << 20).is_err());
            assert!(decompress(&[1, 2, 3, 4, 5], c, 1 << 20).is_err(), "{c:?}");
        }
    }

    #[test]
    fn cut_data_is_an_error_not_less_data() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 241) as u8).collect();
        for c in ALL.into_iter().skip(1) {
            let whole = compressed(c, &data);
            for cut in [whole.len() / 2, whole.len() - 1] {
                assert!(decompress(&whole[..cut], c, 1 << 20).is_err(), "{c:?} cut at {cut}");
            }
        }
    }
}
