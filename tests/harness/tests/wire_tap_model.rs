//! The wire tap's latency model against a real swtpm: each command is held for its
//! modelled service time, and commands from different connections never overlap.

#![allow(clippy::panic, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tpmkey_testenv::{Profile, Swtpm, WireTap};

const GET_RANDOM_MS: u64 = 40;

/// TPM2_GetRandom(8) over a new connection to the tap; checks the response code.
fn get_random(port: u16) {
    get_random_on(&mut TcpStream::connect(("127.0.0.1", port)).unwrap());
}

fn get_random_on(s: &mut TcpStream) {
    s.write_all(&[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 8])
        .unwrap();
    let mut head = [0u8; 10];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[6..10], &[0, 0, 0, 0], "GetRandom failed: {head:?}");
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    let mut rest = vec![0u8; size - 10];
    s.read_exact(&mut rest).unwrap();
}

fn modelled_tap(tpm: &Swtpm) -> WireTap {
    let tap = WireTap::start(tpm.port());
    let text = format!("default 0\nGetRandom {GET_RANDOM_MS}\n");
    tap.set_profile(Some(Profile::parse("test", &text).unwrap()));
    tap
}

#[test]
fn a_command_takes_its_service_time() {
    let tpm = Swtpm::start();
    let tap = modelled_tap(&tpm);
    let start = Instant::now();
    get_random(tap.port);
    assert!(start.elapsed() >= Duration::from_millis(GET_RANDOM_MS));
    assert_eq!(tap.take_codes(), vec![0x17B]);
}

#[test]
fn commands_of_concurrent_connections_run_one_at_a_time() {
    let tpm = Swtpm::start();
    let tap = modelled_tap(&tpm);
    let (clients, each) = (3, 2);
    let barrier = Arc::new(Barrier::new(clients));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = barrier.clone();
            let port = tap.port;
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..each {
                    get_random(port);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // In parallel the six commands would take about two service times; serialised, six.
    let n = (clients * each) as u64;
    assert!(
        start.elapsed() >= Duration::from_millis(n * GET_RANDOM_MS),
        "{n} commands took {:?}",
        start.elapsed()
    );
    assert_eq!(tap.count(), clients * each);
}

#[test]
fn an_all_zero_profile_is_no_model() {
    let tpm = Swtpm::start();
    let tap = modelled_tap(&tpm);
    tap.set_profile(Some(Profile::parse("none", "default 0\n").unwrap()));
    assert!(tap.profile().is_none(), "an all-zero profile is no model");
    tap.set_profile(None);
    get_random(tap.port);
    assert_eq!(tap.take_codes(), vec![0x17B]);
}

/// Clients that keep their connection across commands (swtpm serves one connection at a
/// time) neither deadlock each other nor escape the model.
#[test]
fn clients_keeping_their_connections_take_turns() {
    let tpm = Swtpm::start();
    let tap = modelled_tap(&tpm);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            let port = tap.port;
            thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                barrier.wait();
                for _ in 0..3 {
                    get_random_on(&mut s);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(tap.count(), 6);
}
