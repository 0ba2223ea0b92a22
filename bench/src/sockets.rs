//! `sockets` suite: loopback TCP half round trip through each socket driver of `net`, in one
//! process and one run.
//!
//! Subjects (both ends of the connection use the same driver):
//! - `mio (busy-poll)`: [`net::socket::MioTransport`], non-blocking sockets read by direct `recv`
//!   attempts in a spin loop (the feed's way of using it);
//! - `io_uring multishot`: [`net::socket::UringTransport`] with a registered socket, registered
//!   send/receive buffers and multishot `RECV` into a provided-buffer ring, busy-polled (an idle
//!   poll is a load of the ring's shared task-run flag, no syscall);
//! - `io_uring single-shot`: the same driver forced to single-shot `READ_FIXED` into its
//!   registered receive buffer (the fallback for kernels without buffer rings), busy-polled, for
//!   reference;
//! - `std (blocking)`: [`net::socket::StdTransport`], blocking `read`/`write`: the baseline every
//!   ratio is computed against.
//!
//! Method: an echo server thread pinned to `core_b` accepts one connection and echoes every byte
//! it reads; the client thread, pinned to `core_a`, writes a message of 64, 128 or 256 bytes
//! (the first 8 bytes carry a sequence number that is checked on return), reads until the whole
//! echo is back, and records RTT/2 between two TSC reads. Both ends busy-poll without `pause`
//! (the std ends block in the kernel instead). Each run opens a fresh connection, does a
//! warm-up, then the samples; repetitions are interleaved across sizes and subjects so that a
//! noisy neighbour hurts all of them alike. If `io_uring` cannot be used on the machine, its
//! rows say why instead of failing the suite.
//!
//! What it measures: on loopback there is no NIC, no NAPI (so `SO_BUSY_POLL` does nothing) and
//! no wire; the round trip is two passes through the kernel's TCP stack plus, for the blocking
//! driver, two wake-ups. On a 2-core VM it mostly measures the kernel's TCP loopback path and the
//! scheduler, so the driver differences it shows are upper bounds on what the drivers save in
//! syscalls and copies, not a prediction of wire latency.

use crate::harness::{
    measurement_overhead, pin_to, Clock, LatencyHist, Machine, Percentiles, Report, Row, SuiteOpts,
};
use net::socket::{
    self, probe_io_uring, AnyTransport, DriverKind, MioTransport, RecvMode, SocketConfig,
    StdTransport, Transport, UringTransport,
};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Message sizes, bytes.
const SIZES: [usize; 3] = [64, 128, 256];
/// Longest a run may wait for a connection or an echo before it is declared stuck.
const STUCK: Duration = Duration::from_secs(10);

/// Longest one client run may take before it stops sampling (see [`ping`]).
const RUN_BUDGET: Duration = Duration::from_secs(10);

/// The drivers compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Subject {
    Mio,
    UringMultishot,
    UringSingleShot,
    Std,
}

impl Subject {
    const ALL: [Subject; 4] = [
        Subject::Mio,
        Subject::UringMultishot,
        Subject::UringSingleShot,
        Subject::Std,
    ];

    fn name(self) -> &'static str {
        match self {
            Subject::Mio => "mio (busy-poll)",
            Subject::UringMultishot => "io_uring multishot",
            Subject::UringSingleShot => "io_uring single-shot",
            Subject::Std => "std (blocking)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Subject::Mio => "mio",
            Subject::UringMultishot => "uring-multishot",
            Subject::UringSingleShot => "uring-singleshot",
            Subject::Std => "std",
        }
    }

    fn is_uring(self) -> bool {
        matches!(self, Subject::UringMultishot | Subject::UringSingleShot)
    }

    /// Socket settings of both ends.
    fn config(self) -> SocketConfig {
        let driver = match self {
            Subject::Mio => DriverKind::Mio,
            Subject::UringMultishot | Subject::UringSingleShot => DriverKind::IoUring,
            Subject::Std => DriverKind::Std,
        };
        let mut cfg = SocketConfig::with_driver(driver);
        cfg.uring.multishot = self == Subject::UringMultishot;
        cfg
    }
}

/// What one run learned besides its samples.
#[derive(Default)]
struct RunInfo {
    /// Receive mode the client's io_uring transport ended with (multishot may fall back).
    recv_mode: Option<RecvMode>,
    /// `SO_BUSY_POLL` outcome on the client socket, for the method string.
    busy_poll: Option<String>,
}

/// Pin attempts the OS refused (those threads ran unpinned).
#[derive(Default)]
struct PinLog {
    failures: AtomicU64,
}

impl PinLog {
    fn pin(&self, core: usize) {
        if !pin_to(core) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes all of `buf`, spinning on `WouldBlock`, then pushes it out (`flush` matters only for
/// io_uring, where it reaps the previous send and submits a pending one).
#[inline]
pub(crate) fn write_full<T: Transport>(t: &mut T, buf: &[u8], deadline: Instant) -> io::Result<()> {
    let mut off = 0;
    let mut spins = 0u32;
    while off < buf.len() {
        match t.write(&buf[off..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                spins = check_stuck(spins, deadline, "write")?;
            }
            Err(e) => return Err(e),
        }
    }
    match t.flush() {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
        _ => Ok(()),
    }
}

/// Fills `buf` completely, spinning on `WouldBlock` (a blocking transport blocks instead).
#[inline]
pub(crate) fn read_full<T: Transport>(
    t: &mut T,
    buf: &mut [u8],
    deadline: Instant,
) -> io::Result<()> {
    let mut got = 0;
    let mut spins = 0u32;
    while got < buf.len() {
        match t.read_into(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                spins = check_stuck(spins, deadline, "echo")?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Counts a spin; every 4096 spins compares the clock with `deadline` (cheap enough not to
/// stretch a spin iteration, so the loop's reaction time is unchanged).
#[inline(always)]
fn check_stuck(spins: u32, deadline: Instant, what: &str) -> io::Result<u32> {
    let spins = spins.wrapping_add(1);
    if spins % 4096 == 0 && Instant::now() > deadline {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} stuck for {STUCK:?}"),
        ));
    }
    Ok(spins)
}

/// The echo server's loop: everything read is written back, until the client closes.
fn echo<T: Transport>(t: &mut T) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match t.read_into(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => write_full(t, &buf[..n], Instant::now() + STUCK)?,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Accepts one connection (giving up after [`STUCK`], so a client that failed to connect cannot
/// hang the suite), wraps it in the subject's driver and echoes until the client closes.
fn serve(listener: TcpListener, subject: Subject) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + STUCK;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err("server: no connection arrived".into());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(format!("server accept: {e}")),
        }
    };
    let cfg = subject.config();
    let r = match cfg.driver {
        DriverKind::Mio => MioTransport::from_std(stream, &cfg).and_then(|mut t| echo(&mut t)),
        DriverKind::Std => StdTransport::from_std(stream, &cfg).and_then(|mut t| echo(&mut t)),
        DriverKind::IoUring => match UringTransport::from_std(stream, &cfg) {
            Ok(mut t) => echo(&mut t),
            Err(e) => return Err(format!("server: {e}")),
        },
    };
    r.map_err(|e| format!("server echo: {e}"))
}

/// The client's loop: `warmup + samples` round trips of `size`-byte messages, RTT/2 of the last
/// `samples` recorded into `hist`.
fn ping<T: Transport>(
    t: &mut T,
    clock: &Clock,
    hist: &mut LatencyHist,
    size: usize,
    warmup: usize,
    samples: usize,
) -> io::Result<()> {
    let mut msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut back = vec![0u8; size];
    // A run may not take longer than RUN_BUDGET: on a loaded or misbehaving host (a round trip
    // that waits for the scheduler tick costs milliseconds) the row then reports fewer samples
    // (the table's sample count says how many) instead of stalling the whole harness.
    let budget = Instant::now() + RUN_BUDGET;
    for i in 0..(warmup + samples) as u64 {
        if i as usize > warmup && i % 64 == 0 && Instant::now() > budget {
            break;
        }
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let deadline = Instant::now() + STUCK;
        let t0 = clock.raw();
        write_full(t, &msg, deadline)?;
        read_full(t, &mut back, deadline)?;
        let t1 = clock.raw();
        if back[..8] != msg[..8] {
            return Err(io::Error::other("echo out of order"));
        }
        if i as usize >= warmup {
            hist.record(clock.delta_ns(t0, t1) / 2);
        }
    }
    Ok(())
}

/// Connects with the subject's driver and runs [`ping`]; closes the connection when done so
/// the server sees end of stream.
fn client(
    addr: SocketAddr,
    subject: Subject,
    clock: &Clock,
    hist: &mut LatencyHist,
    (size, warmup, samples): (usize, usize, usize),
) -> Result<RunInfo, String> {
    let mut t = socket::connect(addr, &subject.config()).map_err(|e| e.to_string())?;
    socket::wait_connected(&mut t, STUCK).map_err(|e| format!("connect: {e}"))?;
    let mut info = RunInfo {
        busy_poll: Some(format!("{:?}", t.busy_poll_status())),
        ..RunInfo::default()
    };
    // Monomorphised per driver, so the timed loop has no dispatch `match` in it.
    let r = match &mut t {
        AnyTransport::Mio(m) => ping(m, clock, hist, size, warmup, samples),
        AnyTransport::IoUring(u) => ping(u, clock, hist, size, warmup, samples),
        AnyTransport::Std(s) => ping(s, clock, hist, size, warmup, samples),
    };
    if let AnyTransport::IoUring(u) = &t {
        info.recv_mode = Some(u.recv_mode());
    }
    let _ = t.shutdown_write();
    r.map_err(|e| format!("client: {e}"))?;
    Ok(info)
}

/// One run: a fresh connection between a pinned echo server and a pinned client.
fn run_once(
    subject: Subject,
    opts: &SuiteOpts,
    clock: &Clock,
    pins: &PinLog,
    hist: &mut LatencyHist,
    plan: (usize, usize, usize),
) -> Result<RunInfo, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::scope(|s| {
        let server = s.spawn(move || {
            pins.pin(opts.core_b);
            serve(listener, subject)
        });
        let client = s.spawn(move || {
            pins.pin(opts.core_a);
            client(addr, subject, clock, hist, plan)
        });
        let c = client
            .join()
            .unwrap_or_else(|_| Err("client panicked".into()));
        let sv = server
            .join()
            .unwrap_or_else(|_| Err("server panicked".into()));
        match (c, sv) {
            (Ok(info), Ok(())) => Ok(info),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    })
}

/// Runs the suite; see the module docs for what is measured and how.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let overhead = measurement_overhead(&clock);
    let pins = PinLog::default();
    let reps = opts.reps.max(1);
    let samples_total: usize = if opts.quick { 10_000 } else { 100_000 };
    let samples_per_rep = samples_total.div_ceil(reps);
    let warmup: usize = if opts.quick { 1_000 } else { 5_000 };

    let probe = probe_io_uring();
    let uring_unavailable = (!probe.available).then(|| {
        probe
            .unavailable_reason
            .clone()
            .unwrap_or_else(|| "io_uring unavailable (no reason given)".into())
    });

    // hists[size][subject], errors[size][subject], infos[size][subject]
    let mut hists: Vec<Vec<LatencyHist>> = SIZES
        .iter()
        .map(|_| Subject::ALL.iter().map(|_| LatencyHist::new()).collect())
        .collect();
    let mut errors: Vec<Vec<Option<String>>> = SIZES
        .iter()
        .map(|_| vec![None; Subject::ALL.len()])
        .collect();
    let mut modes: Vec<Vec<Option<RecvMode>>> = SIZES
        .iter()
        .map(|_| vec![None; Subject::ALL.len()])
        .collect();
    let mut busy_poll: Option<String> = None;
    for _ in 0..reps {
        for (zi, size) in SIZES.iter().enumerate() {
            for (si, subject) in Subject::ALL.iter().enumerate() {
                if errors[zi][si].is_some() {
                    continue;
                }
                if subject.is_uring() {
                    if let Some(why) = &uring_unavailable {
                        errors[zi][si] = Some(format!("skipped: {why}"));
                        continue;
                    }
                }
                let plan = (*size, warmup, samples_per_rep);
                match run_once(*subject, opts, &clock, &pins, &mut hists[zi][si], plan) {
                    Ok(info) => {
                        if info.recv_mode.is_some() {
                            modes[zi][si] = info.recv_mode;
                        }
                        if busy_poll.is_none() {
                            busy_poll = info.busy_poll;
                        }
                    }
                    Err(e) => errors[zi][si] = Some(format!("failed: {e}")),
                }
            }
        }
    }

    std::fs::create_dir_all(&opts.out_dir)?;
    let std_idx = Subject::ALL
        .iter()
        .position(|s| *s == Subject::Std)
        .unwrap_or(0);
    let mut rows = Vec::new();
    for (zi, size) in SIZES.iter().enumerate() {
        let pct: Vec<Percentiles> = hists[zi]
            .iter()
            .map(|h| h.percentiles(overhead.p50))
            .collect();
        let std_p50 = (errors[zi][std_idx].is_none()).then_some(pct[std_idx].p50);
        for (si, subject) in Subject::ALL.iter().enumerate() {
            let case = format!("loopback half RTT, {size} B");
            if let Some(e) = &errors[zi][si] {
                rows.push(Row {
                    case,
                    subject: subject.name().into(),
                    latency: None,
                    throughput: None,
                    ratio: None,
                    note: e.clone(),
                });
                continue;
            }
            hists[zi][si].write_percentiles(
                &opts
                    .out_dir
                    .join(format!("sockets-{}-{size}B.hdr.txt", subject.slug())),
            )?;
            let p = pct[si];
            let (ratio, mut note) = match (subject, std_p50) {
                (Subject::Std, _) => (None, "baseline of the ratios".to_string()),
                (_, Some(b)) => (
                    Some(p.p50 as f64 / b.max(1) as f64),
                    "p50 / std p50 (lower is better)".to_string(),
                ),
                (_, None) => (None, "no std baseline (it failed)".to_string()),
            };
            match (subject, modes[zi][si]) {
                (Subject::UringMultishot, Some(RecvMode::SingleShot)) => {
                    note.push_str("; kernel refused multishot: ran single-shot READ_FIXED")
                }
                (Subject::UringMultishot, Some(RecvMode::Multishot)) => {
                    note.push_str("; multishot RECV + provided buffers confirmed")
                }
                _ => {}
            }
            rows.push(Row {
                case,
                subject: subject.name().into(),
                latency: Some(p),
                throughput: None,
                ratio,
                note,
            });
        }
    }

    let pin_failures = pins.failures.load(Ordering::Relaxed);
    let method = format!(
        "TCP over 127.0.0.1, TCP_NODELAY, same driver on both ends; echo server pinned to core \
         {b}, client pinned to core {a}{pinned}; busy-polling ends spin on read without pause, \
         std ends block. Per run: fresh connection, {warmup} warm-up round trips, then \
         {samples_per_rep} samples of RTT/2 (two TSC reads around write + read of the whole \
         echo), sequence number checked; {reps} repetitions interleaved over sizes and drivers, \
         histograms merged ({total} samples per row), overhead p50 subtracted; HDR files \
         sockets-<driver>-<size>B.hdr.txt. io_uring: {uring}. SO_BUSY_POLL 50 us requested \
         (client socket: {bp}); it has no effect on loopback (no NAPI). CAVEAT: loopback on a \
         2-core VM mostly measures the kernel's TCP loopback path and scheduling (the std rows \
         add two wake-ups), not the wire; ratios show what the drivers save in syscalls and \
         copies{quick}.",
        a = opts.core_a,
        b = opts.core_b,
        pinned = if pin_failures > 0 {
            format!(" ({pin_failures} pin attempts refused: those threads ran unpinned)")
        } else {
            String::new()
        },
        total = samples_per_rep * reps,
        uring = match &uring_unavailable {
            Some(why) => format!("UNAVAILABLE ({why})"),
            None => format!(
                "available (coop_taskrun {}, buf_ring {}, multishot recv {})",
                probe.coop_taskrun, probe.buf_ring, probe.multishot_recv
            ),
        },
        bp = busy_poll.as_deref().unwrap_or("unknown"),
        quick = if opts.quick {
            "; QUICK run, not for quoting"
        } else {
            ""
        },
    );
    Ok(Report {
        suite: "sockets".into(),
        machine: Machine::detect(),
        overhead,
        method,
        rows,
    })
}
