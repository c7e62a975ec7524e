//! Key/value records for compaction tests and the compaction bench: Kafka's
//! record format, uncompressed, and a `RecordRewriter` over it. The engine's
//! rewriter (any codec) lives in `veltrix-core`; this one is the smallest
//! that exercises the log's side of the seam.

use veltrix_log::batch::{self, HEADER_BYTES};
use veltrix_log::{RecordRewriter, RecordView, Rewritten};

/// One record: key (`None` for none) and value (`None` for a tombstone).
pub type Kv = (Option<Vec<u8>>, Option<Vec<u8>>);

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn get_varint(buf: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut u = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        u |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((u >> 1) as i64) ^ -((u & 1) as i64));
        }
    }
    Err("varint too long".into())
}

fn put_bytes(out: &mut Vec<u8>, b: &Option<Vec<u8>>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// A batch of `records` at timestamp `ts`, with the producer fields given
/// (`(-1, -1, -1)` for none).
pub fn batch_of(records: &[Kv], ts: i64, producer: (i64, i16, i32)) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (k, v)) in records.iter().enumerate() {
        let mut r = vec![0u8];
        put_varint(&mut r, 0);
        put_varint(&mut r, i as i64);
        put_bytes(&mut r, k);
        put_bytes(&mut r, v);
        put_varint(&mut r, 0);
        put_varint(&mut body, r.len() as i64);
        body.extend_from_slice(&r);
    }
    let mut b = vec![0u8; HEADER_BYTES];
    b.extend_from_slice(&body);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    b[43..51].copy_from_slice(&producer.0.to_be_bytes());
    b[51..53].copy_from_slice(&producer.1.to_be_bytes());
    b[53..57].copy_from_slice(&producer.2.to_be_bytes());
    b[57..61].copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One decoded record: offset, key, value, and its bytes (length included).
pub struct Decoded<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub raw: &'a [u8],
}

fn get_bytes<'a>(buf: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let n = get_varint(buf, at)?;
    if n < 0 {
        return Ok(None);
    }
    let end = *at + n as usize;
    let b = buf.get(*at..end).ok_or("truncated field")?;
    *at = end;
    Ok(Some(b))
}

/// Every record of a stored batch.
pub fn decode(b: &[u8]) -> Result<Vec<Decoded<'_>>, String> {
    let h = batch::parse_header(b).map_err(|e| e.to_string())?;
    let mut at = HEADER_BYTES;
    let mut out = Vec::new();
    for _ in 0..h.record_count {
        let start = at;
        let len = get_varint(b, &mut at)? as usize;
        let end = at + len;
        at += 1;
        get_varint(b, &mut at)?;
        let delta = get_varint(b, &mut at)?;
        let key = get_bytes(b, &mut at)?;
        let value = get_bytes(b, &mut at)?;
        out.push(Decoded {
            offset: h.base_offset + delta,
            key,
            value,
            raw: &b[start..end],
        });
        at = end;
    }
    Ok(out)
}

/// The rewriter over [`batch_of`]'s records.
pub struct KvRewriter;

impl RecordRewriter for KvRewriter {
    fn records(&self, batch: &[u8], visit: &mut dyn FnMut(RecordView<'_>)) -> Result<(), String> {
        for r in decode(batch)? {
            visit(RecordView {
                offset: r.offset,
                key: r.key,
                tombstone: r.value.is_none(),
            });
        }
        Ok(())
    }

    fn retain(&self, b: &[u8], keep: &mut dyn FnMut(RecordView<'_>) -> bool) -> Result<Rewritten, String> {
        let records = decode(b)?;
        let kept: Vec<&Decoded<'_>> = records
            .iter()
            .filter(|r| {
                keep(RecordView {
                    offset: r.offset,
                    key: r.key,
                    tombstone: r.value.is_none(),
                })
            })
            .collect();
        if kept.len() == records.len() {
            return Ok(Rewritten::Unchanged);
        }
        if kept.is_empty() {
            return Ok(Rewritten::Emptied);
        }
        let mut out = b[..HEADER_BYTES].to_vec();
        for r in &kept {
            out.extend_from_slice(r.raw);
        }
        let len = (out.len() - 12) as i32;
        out[8..12].copy_from_slice(&len.to_be_bytes());
        out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
        let crc = batch::compute_crc(&out);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(Rewritten::Rebuilt(out))
    }
}

/// `b` with its attributes set to `attributes` (0x10 transactional, 0x20
/// control) and its CRC recomputed.
pub fn with_attributes(mut b: Vec<u8>, attributes: i16) -> Vec<u8> {
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A transaction marker of producer `(id, epoch)`: a control batch whose one
/// record's key says commit or abort.
pub fn marker(producer_id: i64, epoch: i16, commit: bool) -> Vec<u8> {
    let key = vec![0, 0, 0, u8::from(commit)];
    let b = batch_of(&[(Some(key), Some(vec![0; 6]))], 0, (producer_id, epoch, -1));
    with_attributes(b, 0x30)
}
