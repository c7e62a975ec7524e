//! A real `veltrix serve`, limited in address space, under a bounded stream of
//! tiny requests whose counts claim billions of elements: the broker must keep
//! its memory, keep serving everyone else, and come out of it as it went in.
//!
//! The broker runs on the system allocator under `prlimit --as`, so a count that
//! sized an allocation would make the allocation fail and abort the process; an
//! allocator that merely reserves address space for large sizes fails the same
//! way under the limit.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{Serve, exclusive, resident_bytes};

/// The broker's address-space limit: a few times what it maps when idle, far
/// below the tens of gigabytes one hostile count used to ask for.
const ADDRESS_SPACE_BYTES_MAX: u64 = 2 << 30;
/// The most resident memory the broker may reach during and after the attack.
const RSS_BYTES_MAX: u64 = 128 << 20;
/// How long another client's Metadata request may take at any point.
const METADATA_ANSWER_MS_MAX: u128 = 1000;
/// The attack stops after this many hostile requests...
const ATTACK_REQUESTS_MAX: usize = 3000;
/// ...or after this long, whichever comes first.
const ATTACK_DURATION_MS_MAX: u64 = 15_000;
/// Connections sending hostile requests at once.
const ATTACKERS: usize = 2;

/// A request frame: the 4-byte length, then `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// Hostile requests, each a header followed by a huge count and little else.
fn hostile_frames() -> Vec<Vec<u8>> {
    vec![
        // Metadata v0: the frame the 21-byte fuzz input steers to. Its topic
        // count, 0x29ffeeff, asked the old codec for about 50 GB.
        framed(&[
            0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x29, 0xff, 0xee, 0xff, 0xff, 0x18, 0x5d,
            0x27, 0x12,
        ]),
        // Produce v3: no transactional id, acks -1, timeout, then a topic count
        // of 0x7fffffff.
        framed(&[
            0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x75, 0x30,
            0x7f, 0xff, 0xff, 0xff,
        ]),
        // Metadata v9 (flexible): header with empty tagged fields, then a
        // compact topic count of u32::MAX as a varint.
        framed(&[
            0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ]),
    ]
}

/// Sends one hostile frame on a new connection and waits, within a deadline,
/// for the broker to close it (it refuses bodies that do not decode).
fn attack_once(addr: &str, frame: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(frame).is_err() {
        return;
    }
    let mut sink = [0u8; 64];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    let _ = stream.shutdown(Shutdown::Both);
}

/// A Metadata v0 request for every topic (an empty topic array).
fn metadata_request(correlation_id: i32) -> Vec<u8> {
    let mut body = vec![0x00, 0x03, 0x00, 0x00];
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&[0x00, 0x05]);
    body.extend_from_slice(b"probe");
    body.extend_from_slice(&0i32.to_be_bytes());
    framed(&body)
}

/// As [`metadata_round_trip`], with the connection's failure returned.
fn try_metadata_round_trip(stream: &mut TcpStream, correlation_id: i32) -> std::io::Result<Duration> {
    let started = Instant::now();
    stream.write_all(&metadata_request(correlation_id))?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body)?;
    assert_eq!(body[..4], correlation_id.to_be_bytes(), "the answer is to this request");
    Ok(started.elapsed())
}

/// Sends a Metadata request on `stream` and returns how long its answer took.
fn metadata_round_trip(stream: &mut TcpStream, correlation_id: i32) -> Duration {
    let started = Instant::now();
    stream
        .write_all(&metadata_request(correlation_id))
        .expect("metadata request sent");
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .expect("metadata answer within the read timeout");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("metadata answer body");
    assert_eq!(body[..4], correlation_id.to_be_bytes(), "the answer is to this request");
    started.elapsed()
}

fn probe_connection(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(METADATA_ANSWER_MS_MAX as u64)))
        .unwrap();
    stream
}

#[test]
fn hostile_counts_leave_the_broker_bounded_serving_and_alive() {
    let _machine = exclusive();
    // Every hostile request reaches the decoder: the attack's many short
    // connections from one address are not cut off by its connection rate.
    let mut broker = Serve::new()
        .wrapper(&["prlimit", &format!("--as={ADDRESS_SPACE_BYTES_MAX}"), "--"])
        .env("VELTRIX_LIMITS__CONNECTIONS_PER_IP_PER_SECOND_MAX", "1000000")
        .start();
    let pid = broker.child.id();
    let addr = broker.addr.clone();
    let frames = hostile_frames();

    let mut probe = probe_connection(&addr);
    let mut correlation_id = 0;
    let mut slowest = metadata_round_trip(&mut probe, correlation_id);
    let mut rss_max = resident_bytes(pid);
    let sent = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_millis(ATTACK_DURATION_MS_MAX);
    thread::scope(|s| {
        for _ in 0..ATTACKERS {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    if n >= ATTACK_REQUESTS_MAX {
                        break;
                    }
                    attack_once(&addr, &frames[n % frames.len()]);
                }
            });
        }
        // Another client, on its own connection, is answered throughout; the
        // broker stays alive and its memory stays bounded.
        while sent.load(Ordering::Relaxed) < ATTACK_REQUESTS_MAX && Instant::now() < deadline {
            let exited = broker.child.try_wait().unwrap();
            if exited.is_some() {
                done.store(true, Ordering::Relaxed);
                panic!("the broker exited during the attack: {exited:?}");
            }
            correlation_id += 1;
            slowest = slowest.max(metadata_round_trip(&mut probe, correlation_id));
            rss_max = rss_max.max(resident_bytes(pid));
        }
        done.store(true, Ordering::Relaxed);
    });

    let attacks = sent.load(Ordering::Relaxed).min(ATTACK_REQUESTS_MAX);
    assert!(
        broker.child.try_wait().unwrap().is_none(),
        "the broker is still running"
    );
    // Recovered, not restarted: the same process answers a new client (a
    // connection closed at once by a per-address limit is tried again).
    let recovered = Instant::now() + Duration::from_secs(3);
    loop {
        let mut after = probe_connection(&addr);
        match try_metadata_round_trip(&mut after, 1) {
            Ok(took) => {
                slowest = slowest.max(took);
                break;
            }
            Err(e) => assert!(
                Instant::now() < recovered,
                "no new connection served after the attack: {e}"
            ),
        }
        thread::sleep(Duration::from_millis(50));
    }
    rss_max = rss_max.max(resident_bytes(pid));
    eprintln!(
        "{attacks} hostile requests, {correlation_id} metadata probes, slowest answer {slowest:?}, \
         broker RSS at most {} MiB",
        rss_max >> 20
    );
    assert!(attacks >= frames.len(), "every kind of hostile request was sent");
    assert!(correlation_id > 0, "metadata was probed during the attack");
    assert!(
        slowest.as_millis() < METADATA_ANSWER_MS_MAX,
        "a metadata answer took {slowest:?}"
    );
    assert!(rss_max < RSS_BYTES_MAX, "the broker's RSS reached {rss_max} bytes");
}
