//! Zero allocations per message on the WebSocket receive path: a `WsClient` over the mio driver
//! receives a long stream (small JSON-like texts, >64 KiB messages, fragmented messages with
//! interleaved pings that it must answer) from a loopback server; after warm-up, the client
//! thread's allocations are counted (per thread, by [`testkit::count_allocations`]) and must be
//! zero.

mod common;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use net::socket::{DriverKind, MioTransport, SocketConfig};
use net::ws::frame::OpCode;
use net::ws::{CloseCode, Message, WsClient, WsConfig, WsError};

#[global_allocator]
static A: testkit::CountingAllocator = testkit::CountingAllocator;

const WARMUP: usize = 2_000;
const MEASURED: usize = 20_000;

enum Item {
    Msg(Vec<u8>),
    Fragmented(Vec<u8>),
    Ping,
}

fn script() -> Vec<Item> {
    let mut v = Vec::new();
    for i in 0..WARMUP + MEASURED {
        let payload = if i % 500 == 7 {
            // > 64 KiB: 64-bit length encoding.
            let mut p = format!("{{\"big\":{i},\"pad\":\"").into_bytes();
            p.resize(100_000 + i % 13, b'z');
            p.extend_from_slice(b"\"}");
            p
        } else {
            let mut p = format!(
                "{{\"e\":\"trade\",\"E\":{},\"s\":\"BTCUSDT\",\"t\":{i},\"p\":\"6{:04}.{:02}\",\
                 \"q\":\"0.{:05}\",\"m\":{}}}",
                1_700_000_000_000u64 + i as u64,
                i % 10_000,
                i % 100,
                i * 7 % 100_000,
                i % 2 == 0
            )
            .into_bytes();
            p.resize(p.len() + i % 200, b' ');
            p
        };
        if i % 300 == 11 {
            v.push(Item::Fragmented(payload));
        } else {
            v.push(Item::Msg(payload));
        }
        if i % 1000 == 500 {
            v.push(Item::Ping);
        }
    }
    v
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= b as u64;
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

#[test]
fn ws_client_receive_path_allocates_nothing_per_message() {
    let items = script();
    let mut expected = 0xcbf2_9ce4_8422_2325u64;
    let mut pings = 0;
    for it in &items {
        match it {
            Item::Msg(p) | Item::Fragmented(p) => fnv(&mut expected, p),
            Item::Ping => pings += 1,
        }
    }

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut ws = common::WsServer::accept(s);
        let mut wire = Vec::new();
        let mut f = Vec::new();
        for it in &items {
            match it {
                Item::Msg(p) => common::WsServer::<std::net::TcpStream>::frame_into(
                    &mut f,
                    true,
                    OpCode::Text,
                    p,
                ),
                Item::Fragmented(p) => {
                    let (a, rest) = p.split_at(p.len() / 3);
                    let (b, c) = rest.split_at(rest.len() / 2);
                    let mut g = Vec::new();
                    common::WsServer::<std::net::TcpStream>::frame_into(
                        &mut g,
                        false,
                        OpCode::Text,
                        a,
                    );
                    wire.extend_from_slice(&g);
                    common::WsServer::<std::net::TcpStream>::frame_into(
                        &mut g,
                        true,
                        OpCode::Ping,
                        b"mid",
                    );
                    wire.extend_from_slice(&g);
                    common::WsServer::<std::net::TcpStream>::frame_into(
                        &mut g,
                        false,
                        OpCode::Continuation,
                        b,
                    );
                    wire.extend_from_slice(&g);
                    common::WsServer::<std::net::TcpStream>::frame_into(
                        &mut f,
                        true,
                        OpCode::Continuation,
                        c,
                    );
                }
                Item::Ping => common::WsServer::<std::net::TcpStream>::frame_into(
                    &mut f,
                    true,
                    OpCode::Ping,
                    b"hb",
                ),
            }
            wire.extend_from_slice(&f);
        }
        common::WsServer::<std::net::TcpStream>::frame_into(
            &mut f,
            true,
            OpCode::Close,
            b"\x03\xe8done",
        );
        wire.extend_from_slice(&f);
        use std::io::Write;
        ws.stream.write_all(&wire).unwrap();
        // Collect the client's pongs and its close reply.
        let mut pongs = 0;
        let close = loop {
            match ws.recv() {
                Some((_, OpCode::Pong, _)) => pongs += 1,
                Some((_, OpCode::Close, p)) => break p,
                Some((_, op, _)) => panic!("unexpected {op:?} from client"),
                None => panic!("client closed without a close frame"),
            }
        };
        (pongs, close)
    });

    let mut cfg = SocketConfig::with_driver(DriverKind::Mio);
    cfg.busy_poll_us = None;
    let t = MioTransport::connect(addr, &cfg).unwrap();
    let mut c = WsClient::new(t, "127.0.0.1", "/stream", &WsConfig::default()).unwrap();
    let (mut data, mut got_pings, mut checksum) = (0usize, 0usize, 0xcbf2_9ce4_8422_2325u64);
    // Counted: the polls after the warm-up messages, up to the one that returns the close frame.
    let (mut measuring, mut allocs) = (false, 0);
    let mut close = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = Instant::now();
    loop {
        assert!(Instant::now() < deadline, "timed out after {data} messages");
        let (polled, n) = testkit::count_allocations(|| c.poll());
        if measuring {
            allocs += n.allocations;
        }
        match polled {
            Ok(Some(Message::Text(s))) => {
                fnv(&mut checksum, s.as_bytes());
                data += 1;
                if data == WARMUP {
                    measuring = true;
                }
            }
            Ok(Some(Message::Ping(_))) => got_pings += 1,
            Ok(Some(Message::Close(cf))) => {
                measuring = false;
                close = cf.map(|f| (f.code, f.reason.to_string()));
            }
            Ok(Some(m)) => panic!("unexpected {m:?}"),
            Ok(None) => std::hint::spin_loop(),
            Err(WsError::Closed) => break,
            Err(e) => panic!("after {data} messages: {e}"),
        }
    }
    let elapsed = start.elapsed();
    let (pongs, server_close) = server.join().unwrap();
    eprintln!(
        "received {data} messages ({MEASURED} measured) and {got_pings} pings in {elapsed:?}; \
         allocations while measuring: {allocs}"
    );
    assert_eq!(data, WARMUP + MEASURED);
    assert_eq!(checksum, expected, "payloads differ");
    let frag_pings = (0..WARMUP + MEASURED).filter(|i| i % 300 == 11).count();
    assert_eq!(got_pings, pings + frag_pings);
    assert_eq!(pongs, got_pings, "every ping answered");
    assert_eq!(close, Some((CloseCode::NORMAL, "done".to_string())));
    assert_eq!(server_close, b"\x03\xe8");
    assert_eq!(
        allocs, 0,
        "allocations per message must be zero after warm-up"
    );
}
