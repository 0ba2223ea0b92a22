//! WebSocket conformance against a peer nobody here wrote: the Python `websockets` package.
//!
//! Runs `tests/ws_peer.py` from the repository's `.venv` (found, or created by
//! `scripts/setup-python.sh` when the package is missing, by [`testkit::python`]). The Rust
//! client connects over the mio driver, sends a text and a large masked binary message (checked
//! by the peer), receives thousands of messages including ones over 64 KiB and fragmented ones
//! while answering pings (the peer awaits every pong), verifies a SHA-1 over everything against
//! the peer's own, and completes the close handshake the peer starts with code 1000. Skips with
//! a message if Python cannot be set up, unless `ALGO_REQUIRE_DATA` or `CI` is set, in which
//! case it fails.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use net::socket::{DriverKind, MioTransport, SocketConfig};
use net::ws::{CloseCode, Message, WsClient, WsConfig, WsError};
use sha1::{Digest, Sha1};

/// Kills the peer if the test fails midway.
struct Peer(Child);
impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn account(h: &mut Sha1, kind: u8, payload: &[u8]) {
    h.update([kind]);
    h.update((payload.len() as u64).to_be_bytes());
    h.update(payload);
}

#[test]
fn conformance_with_python_websockets_server() {
    let Some(py) = testkit::python("websockets.asyncio.server") else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws_peer.py");
    conformance_run(&py, &script);
}

/// One session against the peer (send buffer large enough for the 150 KB client message).
fn conformance_run(py: &Path, script: &Path) {
    let child = Command::new(py)
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ws_peer.py");
    let mut peer = Peer(child);
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = peer.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let port: u16 = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("peer did not report its port");
        if let Some(p) = line.strip_prefix("PORT ") {
            break p.trim().parse().unwrap();
        }
    };
    let mut cfg = SocketConfig::with_driver(DriverKind::Mio);
    cfg.busy_poll_us = None;
    let t = MioTransport::connect(([127, 0, 0, 1], port).into(), &cfg).unwrap();
    let ws_cfg = WsConfig {
        send_buffer: 256 << 10,
        ..WsConfig::default()
    };
    let host = format!("127.0.0.1:{port}");
    let mut c = WsClient::new(t, &host, "/stream", &ws_cfg).unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(120);
    while !c.is_open() {
        assert!(Instant::now() < deadline, "handshake timed out");
        assert!(c.poll().expect("handshake").is_none());
        c.wait(Some(Duration::from_millis(1))).unwrap();
    }
    c.send_text("HELLO from rust \u{20ac}").unwrap();
    let blob: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    c.send_binary(&blob).unwrap();

    let mut h = Sha1::new();
    let (mut count, mut pings, mut big, mut frag_like) = (0u64, 0u64, 0u64, 0u64);
    let mut done: Option<String> = None;
    let mut close = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out after {count} messages"
        );
        match c.poll() {
            Ok(Some(Message::Text(s))) => {
                if let Some(rest) = s.strip_prefix("DONE ") {
                    done = Some(rest.to_string());
                    continue;
                }
                if s.len() > 65_535 {
                    big += 1;
                }
                if s.starts_with("frag-") {
                    frag_like += 1;
                }
                account(&mut h, b'T', s.as_bytes());
                count += 1;
            }
            Ok(Some(Message::Binary(b))) => {
                if b.len() > 65_535 {
                    big += 1;
                }
                account(&mut h, b'B', b);
                count += 1;
            }
            Ok(Some(Message::Ping(_))) => pings += 1,
            Ok(Some(Message::Pong(_))) => {}
            Ok(Some(Message::Close(f))) => {
                close = f.map(|f| (f.code, f.reason.to_string()));
            }
            Ok(None) => {
                c.wait(Some(Duration::from_millis(2))).unwrap();
            }
            Err(WsError::Closed) => break,
            Err(e) => panic!("client error after {count} messages: {e}"),
        }
    }
    let elapsed = start.elapsed();
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let done = done.expect("peer's DONE message");
    let mut it = done.split(' ');
    let (peer_count, peer_digest, peer_pings) = (
        it.next().unwrap().parse::<u64>().unwrap(),
        it.next().unwrap().to_string(),
        it.next().unwrap().parse::<u64>().unwrap(),
    );
    eprintln!(
        "received {count} messages ({big} over 64 KiB, {frag_like} fragmented text) and \
         {pings} pings in {elapsed:?}"
    );
    assert_eq!(count, peer_count, "message count");
    assert_eq!(digest, peer_digest, "SHA-1 over all messages");
    assert_eq!(pings, peer_pings, "pings seen");
    assert!(big >= 10, "large messages exercised ({big})");
    assert!(
        frag_like >= 8,
        "fragmented messages exercised ({frag_like})"
    );
    assert_eq!(close, Some((CloseCode::NORMAL, "peer done".to_string())));

    let result = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("peer did not report a result");
        if let Some(r) = line.strip_prefix("RESULT ") {
            break r.to_string();
        }
    };
    let status = peer.0.wait().unwrap();
    eprintln!("peer: {result}");
    assert!(result.starts_with("ok"), "peer reported: {result}");
    assert!(status.success(), "peer exit status {status}");
}
