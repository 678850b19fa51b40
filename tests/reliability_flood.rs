//! Reliability suite: slow clients and floods (issue 17, item 1). The server runs with small
//! limits (1 s for headers and bodies, 8 MiB of bodies, 100 connections) so that each flood
//! plays out in seconds. Every test says what a flood may cost, checks that every one of its
//! connections is closed by the server, that the memory comes back, and that a correct client
//! is served afterwards. Figures are printed for RELIABILITY.md.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Server, ADMIN_TOKEN};

const LIMITS: &[(&str, &str)] = &[
    ("LEDGER_MAX_CONNECTIONS", "100"),
    ("LEDGER_HEADER_TIMEOUT", "1"),
    ("LEDGER_BODY_TIMEOUT", "1"),
    ("LEDGER_BODY_BUDGET_MIB", "8"),
];

/// Longest any client here waits for the server to answer or close: a guard against a hung
/// test, not a measure (the limits above are 1 s).
const GIVE_UP: Duration = Duration::from_secs(60);

/// What became of a connection: the status line's code if an answer came, and whether the
/// server closed the connection (end of stream or reset).
#[derive(Debug)]
struct Ended {
    status: Option<u16>,
    closed: bool,
}

/// Reads until the server closes the connection (or `GIVE_UP`).
fn until_closed(mut stream: TcpStream) -> Ended {
    stream.set_read_timeout(Some(GIVE_UP)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
            Err(_) => break true, // reset by the server
        }
    };
    let text = String::from_utf8_lossy(&got);
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok());
    Ended { status, closed }
}

fn head(path: &str, token: Option<&str>, content_length: usize) -> String {
    let auth = token.map(|t| format!("X-Auth-Token: {t}\r\n")).unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: ledger\r\n{auth}Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    )
}

/// Waits (bounded by `GIVE_UP`) for the server's resident memory to fall to `ceiling_kib`,
/// then for it to settle; answers the lowest seen.
fn memory_falls_to(server: &Server, ceiling_kib: u64) -> u64 {
    let start = Instant::now();
    let mut lowest = u64::MAX;
    let mut settled = 0;
    while start.elapsed() < GIVE_UP && settled < 20 {
        let rss = server.memory_kib("VmRSS");
        lowest = lowest.min(rss);
        if lowest <= ceiling_kib {
            settled += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    lowest
}

fn a_correct_client_is_served(server: &Server) {
    let (status, body) = server.call("GET", "/v1/partners/NOPE", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 404, "{body}");
}

/// 300 connections each announce a 1 MiB body (5 bytes short of the limit), send all of it
/// but 5 bytes, and stall: twice. The server holds at most its body budget of them in memory,
/// answers each within the body timeout and closes it; its memory comes back after each
/// round (a second round does not add to what the first left).
#[test]
fn a_flood_of_half_sent_bodies_is_closed_and_its_memory_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), LIMITS);
    a_correct_client_is_served(&server);
    let baseline = server.memory_kib("VmRSS");
    for round in 1..=2 {
        let ends = half_sent_flood(&server, 300);
        let peak = server.memory_kib("VmHWM");
        let after = memory_falls_to(&server, baseline + 48 * 1024);
        println!(
            "half-sent flood, round {round}: 300 connections x 1 MiB; answered 408: {}; closed by the server: {}; \
             RSS before {} MiB, peak {} MiB, after {} MiB",
            ends.iter().filter(|e| e.status == Some(408)).count(),
            ends.iter().filter(|e| e.closed).count(),
            baseline / 1024,
            peak / 1024,
            after / 1024
        );
        assert!(ends.iter().all(|e| e.closed), "every connection is closed by the server: {ends:?}");
        assert!(ends.iter().all(|e| e.status.is_none() || e.status == Some(408)), "{ends:?}");
        // Unbounded, 300 buffered bodies would be 300 MiB; the budget is 8 MiB.
        assert!(peak < baseline + 96 * 1024, "peak {peak} KiB over a baseline of {baseline} KiB");
        assert!(after <= baseline + 48 * 1024, "memory came back to {after} KiB from a baseline of {baseline} KiB");
        a_correct_client_is_served(&server);
    }
}

/// `n` connections that announce 1 MiB, send it but 5 bytes, and wait to be closed.
fn half_sent_flood(server: &Server, n: usize) -> Vec<Ended> {
    const ANNOUNCED: usize = 1_048_571;
    let body = std::sync::Arc::new(vec![b' '; ANNOUNCED - 5]);
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let (addr, body) = (server.addr().to_string(), body.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(head("/v1/allocations", Some(ADMIN_TOKEN), ANNOUNCED).as_bytes()).unwrap();
                let mut writer = stream.try_clone().unwrap();
                // The body is written beside the reader: the server may stop reading it.
                std::thread::spawn(move || {
                    let _ = writer.write_all(&body);
                });
                until_closed(stream)
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

/// An unknown caller is refused from its headers: the 401 comes while its body is still
/// unsent, so no byte of it was ever read. A body announced larger than the server would
/// even discard gets 413 the same way.
#[test]
fn an_unknown_caller_or_an_oversized_body_is_refused_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), LIMITS);
    let cases = [(None, 1_000_000, 401), (Some("not-a-token"), 1_000_000, 401), (Some(ADMIN_TOKEN), 5_000_000, 413)];
    for (token, length, expected) in cases {
        let clients: Vec<_> = (0..100)
            .map(|_| {
                let addr = server.addr().to_string();
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream.write_all(head("/v1/allocations", token, length).as_bytes()).unwrap();
                    until_closed(stream)
                })
            })
            .collect();
        for c in clients {
            let ended = c.join().unwrap();
            assert_eq!(ended.status, Some(expected), "{token:?} {length}: {ended:?}");
            assert!(ended.closed, "the connection of an unread body is closed");
        }
    }
    println!("refused from headers: 300 connections (200 x 401 unknown caller, 100 x 413 too large), no body read");
    a_correct_client_is_served(&server);
}

/// 150 idle connections and 150 that send half their headers: the server holds no more than
/// its 100 connections at once, closes every one after the header timeout, and then serves.
#[test]
fn idle_and_slow_header_connections_are_capped_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), LIMITS);
    let before = server.open_sockets();
    let streams: Vec<TcpStream> = (0..300)
        .map(|i| {
            let mut stream = TcpStream::connect(server.addr()).unwrap();
            if i % 2 == 1 {
                stream.write_all(b"POST /v1/allocations HTTP/1.1\r\nHost: ledger\r\nX-Auth-To").unwrap();
            }
            stream
        })
        .collect();
    let clients: Vec<_> = streams.into_iter().map(|s| std::thread::spawn(move || until_closed(s))).collect();
    // The most sockets the server holds while the clients wait to be closed.
    let mut held = server.open_sockets();
    while clients.iter().any(|c| !c.is_finished()) {
        held = held.max(server.open_sockets());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ends: Vec<Ended> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    println!(
        "idle/slow-header flood: 300 connections; server sockets before {before}, while held {held}; closed by the server: {}",
        ends.iter().filter(|e| e.closed).count()
    );
    assert!(held <= before + 100, "the server held {held} sockets with a cap of 100 connections");
    assert!(ends.iter().all(|e| e.closed), "every idle or slow connection is closed: {ends:?}");
    a_correct_client_is_served(&server);
}
