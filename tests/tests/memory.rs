//! Memory after large bodies (issue 14 #6): a gateway that relayed 10–13 MB requests and answers
//! must give the memory back. Each worker's JSON-RPC classifier used to keep the scratch copy of
//! the largest body it had classified (simd-json parses in place) for good — 13 MB per worker;
//! it now releases scratch grown past 256 KiB (`codec::jsonrpc::Classifier`). And glibc's
//! dynamic mmap threshold kept freed 10 MB buffers in the heap arenas in some runs; the gateway
//! pins the threshold (`engine::tune_allocator`). Without either fix this test sees 43–46 MB
//! after the load against a 20–22 MB baseline.
//!
//! The upstream is a plain keep-alive echo on `std::net` (a body of the request's size back), so
//! the gateway holds both a large request and a large answer per exchange.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mcpgate_tests::http::{build_request, exchange};
use mcpgate_tests::{Gateway, GatewaySpec};

/// Answers every POST with a JSON body as long as the request's, on one keep-alive connection
/// per client connection.
fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_echo(stream));
        }
    });
    addr
}

fn serve_echo(stream: TcpStream) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let prefix = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":""#;
        let suffix = br#""}]}}"#;
        let filler = length.saturating_sub(prefix.len() + suffix.len());
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            prefix.len() + filler + suffix.len()
        )
        .into_bytes();
        answer.extend_from_slice(prefix);
        answer.resize(answer.len() + filler, b'x');
        answer.extend_from_slice(suffix);
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

fn post(gateway: &Gateway, size: usize) {
    let mut body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":""#.to_vec();
    body.resize(size - 6, b'y');
    body.extend_from_slice(br#""}}}"#);
    body.resize(size, b' ');
    let request = build_request(
        "POST",
        "/mcp-proxy",
        &gateway.addr().to_string(),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        &body,
    );
    let response = exchange(gateway.addr(), &request, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("POST of {size} bytes: {e}"));
    assert_eq!(response.status, 200, "POST of {size} bytes");
    assert_eq!(response.body.len(), size, "echoed size");
}

#[test]
fn rss_returns_to_its_baseline_after_large_bodies() {
    let upstream = echo_upstream();
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\
         [gateway.limits]\nmax_body_bytes = 16777216\n\n\
         [[api]]\nname = \"big\"\npath = \"/mcp-proxy\"\nupstream = \"http://{upstream}/mcp\"\n"
    );
    let mut gateway = Gateway::start(&GatewaySpec::config(config));
    let pid = gateway.process().pid();
    // Warm up with small exchanges (both workers, the pools), then take the baseline.
    for _ in 0..8 {
        post(&gateway, 4096);
    }
    let baseline = rss_kib(pid);
    // The peak is sampled while the bodies are in flight (after each exchange they are freed).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    for size in [
        10_000_000, 13_000_000, 11_500_000, 12_000_000, 10_500_000, 13_000_000,
    ] {
        post(&gateway, size);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap_or_else(|_| panic!("sampler"));
    assert!(
        peak > baseline + 10 * 1024,
        "the large bodies did not show in the resident set (baseline {baseline} KiB, peak {peak} KiB): the test measures nothing"
    );
    // Freed memory goes back at once; allow a moment for the last connection to close.
    let deadline = Instant::now() + Duration::from_secs(10);
    let limit = baseline + baseline / 10 + 2048;
    let mut now = rss_kib(pid);
    while now > limit && Instant::now() < deadline {
        post(&gateway, 4096);
        std::thread::sleep(Duration::from_millis(100));
        now = rss_kib(pid);
    }
    assert!(
        now <= limit,
        "RSS {now} KiB after the load, baseline {baseline} KiB (peak {peak} KiB): more than 10 % above"
    );
}
