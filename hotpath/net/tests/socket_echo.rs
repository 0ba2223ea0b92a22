//! Loopback echo through every socket driver: mio, io_uring (multishot and forced single-shot,
//! skipped with the reason if io_uring is unavailable), and the blocking std driver.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use net::socket::{
    self, probe_io_uring, AnyTransport, BusyPollStatus, DriverKind, Interest, RecvMode,
    SocketConfig, Transport, UringTransport,
};

const T: Duration = Duration::from_secs(20);

/// A thread echoing everything on one accepted connection until EOF.
fn echo_server() -> (SocketAddr, thread::JoinHandle<u64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return total;
            }
            s.write_all(&buf[..n]).unwrap();
            total += n as u64;
        }
    });
    (addr, h)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Echo a series of messages of growing size and check every byte; then half-close and expect
/// EOF. Returns the transport's description.
fn echo_through(mut t: AnyTransport, h: thread::JoinHandle<u64>) {
    socket::wait_connected(&mut t, T).expect("connect");
    assert!(t.poll_connect().unwrap());
    let local = t.local_addr().unwrap();
    assert!(local.ip().is_loopback());
    assert_ne!(t.peer_addr().unwrap().port(), 0);
    let mut total = 0u64;
    for (i, len) in [1usize, 2, 100, 1500, 65_536, 300_000, 1 << 20]
        .iter()
        .enumerate()
    {
        let msg = pattern(*len, i as u8);
        let mut back = vec![0u8; *len];
        // Write and read concurrently so large messages cannot deadlock on socket buffers.
        let deadline = Instant::now() + T;
        let (mut w, mut r) = (0, 0);
        while r < *len {
            assert!(Instant::now() < deadline, "echo of {len} bytes timed out");
            if w < *len {
                match t.write(&msg[w..]) {
                    Ok(n) => w += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("write: {e}"),
                }
            }
            match t.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("flush: {e}"),
            }
            match t.read_into(&mut back[r..]) {
                Ok(0) => panic!("unexpected EOF"),
                Ok(n) => r += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    t.poll(Interest::Both, Some(Duration::from_millis(1)))
                        .unwrap();
                }
                Err(e) => panic!("read: {e}"),
            }
        }
        assert!(back == msg, "echoed bytes differ for {len}");
        total += *len as u64;
    }
    t.shutdown_write().unwrap();
    let mut one = [0u8; 1];
    let deadline = Instant::now() + T;
    loop {
        match t.read_into(&mut one) {
            Ok(0) => break,
            Ok(_) => panic!("data after echo"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no EOF");
                t.poll(Interest::Readable, Some(Duration::from_millis(5)))
                    .unwrap();
            }
            Err(e) => panic!("read at EOF: {e}"),
        }
    }
    assert_eq!(h.join().unwrap(), total);
}

fn report_busy_poll(t: &AnyTransport) {
    let s = t.busy_poll_status();
    eprintln!("{}: SO_BUSY_POLL -> {s:?}", t.driver());
    assert_ne!(s, BusyPollStatus::NotRequested);
}

#[test]
fn mio_echo() {
    let (addr, h) = echo_server();
    let t = socket::connect(addr, &SocketConfig::with_driver(DriverKind::Mio)).unwrap();
    assert_eq!(t.driver(), DriverKind::Mio);
    report_busy_poll(&t);
    echo_through(t, h);
}

#[test]
fn std_echo() {
    let (addr, h) = echo_server();
    let t = socket::connect(addr, &SocketConfig::with_driver(DriverKind::Std)).unwrap();
    assert_eq!(t.driver(), DriverKind::Std);
    report_busy_poll(&t);
    echo_through(t, h);
}

fn uring_or_skip() -> bool {
    let p = probe_io_uring();
    eprintln!("io_uring probe: {p:?}");
    if !p.available {
        eprintln!(
            "SKIP io_uring tests: {}",
            p.unavailable_reason.as_deref().unwrap_or("unknown")
        );
    }
    p.available
}

#[test]
fn io_uring_echo_multishot() {
    if !uring_or_skip() {
        return;
    }
    let (addr, h) = echo_server();
    let cfg = SocketConfig::with_driver(DriverKind::IoUring);
    let t = socket::connect(addr, &cfg).unwrap();
    report_busy_poll(&t);
    let AnyTransport::IoUring(u) = &t else {
        panic!("wrong driver")
    };
    let multishot_expected = probe_io_uring().multishot_recv;
    eprintln!(
        "io_uring: recv mode {:?}, coop_taskrun {}",
        u.recv_mode(),
        u.coop_taskrun()
    );
    echo_through(t, h);
    if multishot_expected {
        // The mode is only known for sure after the first receive; re-run a short exchange.
        let (addr, h) = echo_server();
        let mut t = UringTransport::connect(addr, &cfg).unwrap();
        socket::wait_connected(&mut t, T).unwrap();
        socket::write_all(&mut t, b"ping", T).unwrap();
        let mut b = [0u8; 4];
        socket::read_exact(&mut t, &mut b, T).unwrap();
        assert_eq!(&b, b"ping");
        assert_eq!(t.recv_mode(), RecvMode::Multishot);
        drop(t);
        h.join().unwrap();
    }
}

#[test]
fn io_uring_echo_single_shot_fallback() {
    if !uring_or_skip() {
        return;
    }
    let (addr, h) = echo_server();
    let mut cfg = SocketConfig::with_driver(DriverKind::IoUring);
    cfg.uring.multishot = false;
    cfg.uring.recv_buffer = 4096; // small: many completions per message
    cfg.uring.send_buffer = 8192; // small: writes return WouldBlock and short counts
    let t = socket::connect(addr, &cfg).unwrap();
    let AnyTransport::IoUring(u) = &t else {
        panic!("wrong driver")
    };
    assert_eq!(u.recv_mode(), RecvMode::SingleShot);
    echo_through(t, h);
}

#[test]
fn io_uring_small_provided_buffers_and_enobufs() {
    if !uring_or_skip() {
        return;
    }
    // Two 512-byte provided buffers: the kernel runs out (ENOBUFS) constantly and the driver
    // must re-arm the multishot receive as buffers are handed back.
    let (addr, h) = echo_server();
    let mut cfg = SocketConfig::with_driver(DriverKind::IoUring);
    cfg.uring.ring_buffers = 2;
    cfg.uring.ring_buffer_size = 512;
    echo_through(socket::connect(addr, &cfg).unwrap(), h);
}

/// Busy-polling `read_into` alone (no `poll`, no waiting) must see data: completions have to
/// become visible without a blocking wait.
#[test]
fn io_uring_busy_poll_read_only() {
    if !uring_or_skip() {
        return;
    }
    let (addr, h) = echo_server();
    let mut t =
        UringTransport::connect(addr, &SocketConfig::with_driver(DriverKind::IoUring)).unwrap();
    let deadline = Instant::now() + T;
    while !t.poll_connect().unwrap() {
        assert!(Instant::now() < deadline, "connect");
    }
    for round in 0..1000u32 {
        let msg = round.to_le_bytes();
        let mut w = 0;
        while w < 4 {
            match t.write(&msg[w..]) {
                Ok(n) => w += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        let mut got = [0u8; 4];
        let mut r = 0;
        while r < 4 {
            match t.read_into(&mut got[r..]) {
                Ok(0) => panic!("EOF"),
                Ok(n) => r += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "busy poll starved at round {round}"
                    );
                    std::hint::spin_loop();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, msg);
    }
    drop(t);
    assert_eq!(h.join().unwrap(), 4000);
}

#[test]
fn connect_refused_is_reported_by_every_driver() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut drivers = vec![DriverKind::Mio, DriverKind::Std];
    if uring_or_skip() {
        drivers.push(DriverKind::IoUring);
    }
    for d in drivers {
        let r = socket::connect(addr, &SocketConfig::with_driver(d))
            .map_err(|e| match e {
                net::NetError::Io(e) => e,
                e => panic!("{d}: {e}"),
            })
            .and_then(|mut t| socket::wait_connected(&mut t, T));
        let e = r.expect_err("connect to a closed port must fail");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{d}: {e}");
    }
}

#[test]
fn driver_kind_parses_from_config_strings() {
    for (s, k) in [
        ("mio", DriverKind::Mio),
        ("epoll", DriverKind::Mio),
        ("io_uring", DriverKind::IoUring),
        ("io-uring", DriverKind::IoUring),
        ("std", DriverKind::Std),
    ] {
        assert_eq!(s.parse::<DriverKind>().unwrap(), k);
    }
    assert!("dpdk".parse::<DriverKind>().is_err());
    assert_eq!(DriverKind::IoUring.to_string(), "io_uring");
}

/// Dropping an io_uring transport with a multishot receive armed and a send in flight must
/// cancel and reap everything before the buffers are freed.
#[test]
fn io_uring_quiesce_reaps_everything_in_flight() {
    if !uring_or_skip() {
        return;
    }
    // A server that accepts and never reads: our send stays in flight once buffers fill.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let (_s, _) = l.accept().unwrap();
        let _ = stop_rx.recv_timeout(T);
    });
    let mut cfg = SocketConfig::with_driver(DriverKind::IoUring);
    cfg.send_buffer = Some(16 * 1024);
    cfg.uring.send_buffer = 4 << 20;
    let mut t = UringTransport::connect(addr, &cfg).unwrap();
    socket::wait_connected(&mut t, T).unwrap();
    let chunk = vec![0x55u8; 1 << 20];
    for _ in 0..4 {
        let _ = t.write(&chunk);
    }
    let mut b = [0u8; 8];
    assert_eq!(
        t.read_into(&mut b).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert!(
        t.inflight_ops() >= 2,
        "receive armed and send in flight: {}",
        t.inflight_ops()
    );
    assert!(t.quiesce(), "all operations reaped");
    assert_eq!(t.inflight_ops(), 0);
    drop(t);
    stop_tx.send(()).unwrap();
    h.join().unwrap();
}
