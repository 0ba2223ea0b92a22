//! `rings` suite: the SPSC ring against its peers, in one process and one run.
//!
//! Subjects (all carrying a `u64`, all with 1024 slots):
//! - `ringbuffers::spsc`: our ring, single-item API (`try_push` / `try_pop`), and for throughput
//!   also its batch API (`write_batch` / `read_batch`);
//! - `disruptor (BusySpin)`: the `disruptor` crate, single producer, consumer run by the
//!   disruptor on its own pinned thread with the `BusySpin` wait strategy (its idiomatic mode);
//! - `disruptor (poller)`: the same ring consumed through its event-poller API from our own loop,
//!   i.e. exactly the loop the other subjects run;
//! - `crossbeam ArrayQueue`, `crossbeam bounded channel`, `std sync_channel`.
//!
//! Two measurements:
//! - **one-way latency**: a ping-pong between two threads pinned to `core_a` / `core_b` over two
//!   queues (for the disruptor, two disruptors); thread A timestamps a send and the matching
//!   reply with the TSC, and records RTT/2. Every receiver busy-polls without a `pause` hint, as
//!   the disruptor's `BusySpin` does, so all subjects wait the same way.
//! - **burst throughput**: the producer pushes a burst of 1, 10 or 100 items, then waits until the
//!   consumer reports the burst drained (an acknowledgement through one atomic on its own cache
//!   line); items/s over the whole run. Burst 1 is dominated by the hand-off, burst 100 by the
//!   per-item cost.
//!
//! Repetitions are interleaved (rep 1 of every subject, then rep 2, ...) so that a noisy
//! neighbour on the shared 2-core VM hurts every subject alike instead of one in particular.

use crate::harness::{
    measurement_overhead, median, pin_to, Clock, LatencyHist, Machine, Percentiles, Report, Row,
    SuiteOpts,
};
use crossbeam::utils::CachePadded;
use crossbeam_queue::ArrayQueue;
use disruptor::{
    BusySpin, EventPoller, ProcessorSettings as _, Producer as _, SingleConsumerBarrier,
    SingleProducer, SingleProducerBarrier,
};
use ringbuffers::spsc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Slots in every queue under test.
const CAP: usize = 1024;
/// Ping-pong payload that tells the echo thread to stop.
const STOP: u64 = u64::MAX;
/// Round trips before any sample is recorded (per repetition).
const WARMUP_RTT: usize = 10_000;

/// The sending half of a queue under test, seen through one non-blocking call.
trait Tx: Send {
    fn try_send(&mut self, v: u64) -> bool;
    /// Sends `v`, spinning (no `pause`) while the queue is full.
    #[inline(always)]
    fn send(&mut self, v: u64) {
        while !self.try_send(v) {}
    }
    /// Sends the `n` items `first..first + n`; the default is `n` single sends.
    #[inline(always)]
    fn send_burst(&mut self, first: u64, n: usize) {
        for i in 0..n as u64 {
            self.send(first + i);
        }
    }
}

/// The receiving half of a queue under test.
trait Rx: Send {
    fn try_recv(&mut self) -> Option<u64>;
    /// Receives what is available (at most `max`), returns how many; the default is one item.
    #[inline(always)]
    fn recv_some(&mut self, _max: usize) -> usize {
        usize::from(self.try_recv().is_some())
    }
}

impl Tx for spsc::Producer<u64> {
    #[inline(always)]
    fn try_send(&mut self, v: u64) -> bool {
        self.try_push(v).is_ok()
    }
}
impl Rx for spsc::Consumer<u64> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        self.try_pop()
    }
}

/// Our ring driven through its batch API.
struct SpscBatchTx(spsc::Producer<u64>);
struct SpscBatchRx(spsc::Consumer<u64>);
impl Tx for SpscBatchTx {
    #[inline(always)]
    fn try_send(&mut self, v: u64) -> bool {
        self.0.try_push(v).is_ok()
    }
    #[inline(always)]
    fn send_burst(&mut self, first: u64, n: usize) {
        let mut done = 0;
        while done < n {
            let base = first + done as u64;
            done += self
                .0
                .write_batch(n - done, |i, s| s.write(base + i as u64));
        }
    }
}
impl Rx for SpscBatchRx {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        self.0.try_pop()
    }
    #[inline(always)]
    fn recv_some(&mut self, max: usize) -> usize {
        self.0.read_batch(max, |v| {
            std::hint::black_box(v);
        })
    }
}

struct AqTx(Arc<ArrayQueue<u64>>);
struct AqRx(Arc<ArrayQueue<u64>>);
impl Tx for AqTx {
    #[inline(always)]
    fn try_send(&mut self, v: u64) -> bool {
        self.0.push(v).is_ok()
    }
}
impl Rx for AqRx {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        self.0.pop()
    }
}

impl Tx for crossbeam_channel::Sender<u64> {
    #[inline(always)]
    fn try_send(&mut self, v: u64) -> bool {
        crossbeam_channel::Sender::try_send(self, v).is_ok()
    }
}
impl Rx for crossbeam_channel::Receiver<u64> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        crossbeam_channel::Receiver::try_recv(self).ok()
    }
}

impl Tx for std::sync::mpsc::SyncSender<u64> {
    #[inline(always)]
    fn try_send(&mut self, v: u64) -> bool {
        std::sync::mpsc::SyncSender::try_send(self, v).is_ok()
    }
}
impl Rx for std::sync::mpsc::Receiver<u64> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        std::sync::mpsc::Receiver::try_recv(self).ok()
    }
}

struct DisTx(SingleProducer<u64, SingleConsumerBarrier>);
struct DisRx(EventPoller<u64, SingleProducerBarrier>);
impl Tx for DisTx {
    #[inline(always)]
    fn try_send(&mut self, v: u64) -> bool {
        self.0.try_publish(|e| *e = v).is_ok()
    }
}
impl Rx for DisRx {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        match self.0.take(1) {
            Ok(mut guard) => (&mut guard).next().copied(),
            Err(_) => None,
        }
    }
}

/// A disruptor consumed through an event poller on a thread we own.
fn disruptor_polled() -> (DisTx, DisRx) {
    let (poller, builder) =
        disruptor::build_single_producer(CAP, || 0u64, BusySpin).new_event_poller();
    (DisTx(builder.build()), DisRx(poller))
}

/// The queues under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Subject {
    Spsc,
    SpscBatch,
    DisruptorBusySpin,
    DisruptorPoller,
    ArrayQueue,
    CrossbeamChannel,
    StdSyncChannel,
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Spsc => "ringbuffers::spsc",
            Subject::SpscBatch => "ringbuffers::spsc (batch API)",
            Subject::DisruptorBusySpin => "disruptor (BusySpin)",
            Subject::DisruptorPoller => "disruptor (poller)",
            Subject::ArrayQueue => "crossbeam ArrayQueue",
            Subject::CrossbeamChannel => "crossbeam bounded channel",
            Subject::StdSyncChannel => "std sync_channel",
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Subject::Spsc => "spsc",
            Subject::SpscBatch => "spsc-batch",
            Subject::DisruptorBusySpin => "disruptor-busyspin",
            Subject::DisruptorPoller => "disruptor-poller",
            Subject::ArrayQueue => "arrayqueue",
            Subject::CrossbeamChannel => "crossbeam-channel",
            Subject::StdSyncChannel => "std-sync-channel",
        }
    }
}

const LATENCY_SUBJECTS: [Subject; 6] = [
    Subject::Spsc,
    Subject::DisruptorBusySpin,
    Subject::DisruptorPoller,
    Subject::ArrayQueue,
    Subject::CrossbeamChannel,
    Subject::StdSyncChannel,
];

const THROUGHPUT_SUBJECTS: [Subject; 7] = [
    Subject::Spsc,
    Subject::SpscBatch,
    Subject::DisruptorBusySpin,
    Subject::DisruptorPoller,
    Subject::ArrayQueue,
    Subject::CrossbeamChannel,
    Subject::StdSyncChannel,
];

const BURSTS: [usize; 3] = [1, 10, 100];

/// Pinning results of the threads a measurement started (false = the OS refused).
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

/// Ping-pong over two generic queues: thread A (core_a) sends `i` on queue 1 and waits for it on
/// queue 2; thread B (core_b) echoes. Records RTT/2 of the last `samples` round trips.
fn pingpong_generic<T1: Tx, R1: Rx, T2: Tx, R2: Rx>(
    opts: &SuiteOpts,
    clock: &Clock,
    pins: &PinLog,
    hist: &mut LatencyHist,
    samples: usize,
    (mut tx1, mut rx1): (T1, R1),
    (mut tx2, mut rx2): (T2, R2),
) {
    // Each thread takes its handles by value (`move`), as a real stage would: handles carry
    // per-side mutable state, and leaving them side by side on this stack would add false
    // sharing that is an artefact of the benchmark, not of the queue.
    std::thread::scope(|s| {
        s.spawn(move || {
            pins.pin(opts.core_b);
            loop {
                if let Some(v) = rx1.try_recv() {
                    tx2.send(v);
                    if v == STOP {
                        break;
                    }
                }
            }
        });
        s.spawn(move || {
            pins.pin(opts.core_a);
            for i in 0..(WARMUP_RTT + samples) as u64 {
                let t0 = clock.raw();
                tx1.send(i);
                let v = loop {
                    if let Some(v) = rx2.try_recv() {
                        break v;
                    }
                };
                let t1 = clock.raw();
                assert_eq!(v, i, "ping-pong reply out of order");
                if i as usize >= WARMUP_RTT {
                    hist.record(clock.delta_ns(t0, t1) / 2);
                }
            }
            tx1.send(STOP);
            while rx2.try_recv() != Some(STOP) {}
        });
    });
}

/// Ping-pong where the echo side is a disruptor-managed `BusySpin` processor pinned to core_b,
/// republishing each event into a second disruptor that thread A polls.
fn pingpong_disruptor_busyspin(
    opts: &SuiteOpts,
    clock: &Clock,
    pins: &PinLog,
    hist: &mut LatencyHist,
    samples: usize,
) {
    let (mut back_rx, back_builder) =
        disruptor::build_single_producer(CAP, || 0u64, BusySpin).new_event_poller();
    let mut back_tx = back_builder.build();
    let mut fwd_tx = disruptor::build_single_producer(CAP, || 0u64, BusySpin)
        .pin_at_core(opts.core_b)
        .handle_events_with(move |e: &u64, _seq, _eob| back_tx.publish(|x| *x = *e))
        .build();
    std::thread::scope(|s| {
        s.spawn(move || {
            pins.pin(opts.core_a);
            let mut recv = || loop {
                if let Ok(mut g) = back_rx.take(1) {
                    if let Some(v) = (&mut g).next() {
                        return *v;
                    }
                }
            };
            for i in 0..(WARMUP_RTT + samples) as u64 {
                let t0 = clock.raw();
                fwd_tx.publish(|x| *x = i);
                let v = recv();
                let t1 = clock.raw();
                assert_eq!(v, i, "ping-pong reply out of order");
                if i as usize >= WARMUP_RTT {
                    hist.record(clock.delta_ns(t0, t1) / 2);
                }
            }
            // Dropping `fwd_tx` stops and joins the processor thread, which drops `back_tx`.
            drop(fwd_tx);
        });
    });
}

fn latency_once(
    subject: Subject,
    opts: &SuiteOpts,
    clock: &Clock,
    pins: &PinLog,
    hist: &mut LatencyHist,
    samples: usize,
) {
    match subject {
        Subject::Spsc | Subject::SpscBatch => pingpong_generic(
            opts,
            clock,
            pins,
            hist,
            samples,
            spsc::channel::<u64>(CAP),
            spsc::channel::<u64>(CAP),
        ),
        Subject::DisruptorBusySpin => pingpong_disruptor_busyspin(opts, clock, pins, hist, samples),
        Subject::DisruptorPoller => pingpong_generic(
            opts,
            clock,
            pins,
            hist,
            samples,
            disruptor_polled(),
            disruptor_polled(),
        ),
        Subject::ArrayQueue => {
            let (a, b) = (
                Arc::new(ArrayQueue::new(CAP)),
                Arc::new(ArrayQueue::new(CAP)),
            );
            pingpong_generic(
                opts,
                clock,
                pins,
                hist,
                samples,
                (AqTx(Arc::clone(&a)), AqRx(a)),
                (AqTx(Arc::clone(&b)), AqRx(b)),
            )
        }
        Subject::CrossbeamChannel => pingpong_generic(
            opts,
            clock,
            pins,
            hist,
            samples,
            crossbeam_channel::bounded::<u64>(CAP),
            crossbeam_channel::bounded::<u64>(CAP),
        ),
        Subject::StdSyncChannel => pingpong_generic(
            opts,
            clock,
            pins,
            hist,
            samples,
            std::sync::mpsc::sync_channel::<u64>(CAP),
            std::sync::mpsc::sync_channel::<u64>(CAP),
        ),
    }
}

/// Timed windows per throughput run; each run reports the median window rate.
const WINDOWS: usize = 50;

/// Item counts of one throughput run: `warm` untimed items, then `windows` timed windows of
/// `per_window` items each, all multiples of the burst.
#[derive(Clone, Copy, Debug)]
struct Plan {
    burst: usize,
    warm: u64,
    per_window: u64,
    windows: usize,
}

impl Plan {
    fn new(burst: usize, items: u64) -> Plan {
        let b = burst as u64;
        Plan {
            burst,
            warm: (items / 10 / b).max(1) * b,
            per_window: (items / WINDOWS as u64 / b).max(1) * b,
            windows: WINDOWS,
        }
    }

    fn all(&self) -> u64 {
        self.warm + self.per_window * self.windows as u64
    }
}

/// The producer side of every throughput run: sends bursts (`send_burst(first)` sends items
/// `first .. first + burst`), waits for each burst's acknowledgement, stamps the TSC at every
/// window boundary, and returns the median window rate in items/s.
///
/// The median over short windows, rather than one rate over the whole run, is what makes the
/// number usable on a shared VM: a window in which either thread was descheduled is an outlier
/// and drops out, instead of dragging the whole run down by however long the neighbour ran.
fn drive_producer(
    plan: Plan,
    clock: &Clock,
    acked: &AtomicU64,
    mut send_burst: impl FnMut(u64),
) -> f64 {
    let mut stamps = Vec::with_capacity(plan.windows + 1);
    let mut next_stamp = plan.warm;
    let mut sent = 0u64;
    while sent < plan.all() {
        if sent == next_stamp {
            stamps.push(clock.raw());
            next_stamp += plan.per_window;
        }
        send_burst(sent);
        sent += plan.burst as u64;
        // Acquire: pairs with the consumer's Release store of the acknowledgement.
        while acked.load(Ordering::Acquire) < sent {}
    }
    stamps.push(clock.raw());
    let rates = stamps
        .windows(2)
        .map(|w| plan.per_window as f64 / (clock.delta_ns(w[0], w[1]).max(1) as f64 / 1e9))
        .collect();
    median(rates)
}

/// Burst throughput over a generic queue; the consumer acknowledges each completed burst
/// through `acked` (one atomic on its own cache line).
fn burst_generic<T: Tx, R: Rx>(
    opts: &SuiteOpts,
    clock: &Clock,
    pins: &PinLog,
    plan: Plan,
    (mut tx, mut rx): (T, R),
) -> f64 {
    let acked = CachePadded::new(AtomicU64::new(0));
    let acked = &acked;
    let burst = plan.burst;
    std::thread::scope(|s| {
        s.spawn(move || {
            pins.pin(opts.core_b);
            let mut got = 0u64;
            let mut in_burst = 0usize;
            while got < plan.all() {
                let n = rx.recv_some(burst - in_burst);
                if n > 0 {
                    got += n as u64;
                    in_burst += n;
                    if in_burst == burst {
                        in_burst = 0;
                        // Release: the producer's Acquire load sees the burst fully drained.
                        acked.store(got, Ordering::Release);
                    }
                }
            }
        });
        s.spawn(move || {
            pins.pin(opts.core_a);
            drive_producer(plan, clock, acked, |first| tx.send_burst(first, burst))
        })
        .join()
        .expect("producer thread panicked")
    })
}

/// Burst throughput with the disruptor's own `BusySpin` processor as the consumer.
fn burst_disruptor_busyspin(opts: &SuiteOpts, clock: &Clock, pins: &PinLog, plan: Plan) -> f64 {
    let acked = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let ack = Arc::clone(&acked);
    let b = plan.burst as u64;
    let (mut got, mut in_burst) = (0u64, 0u64);
    let mut tx = disruptor::build_single_producer(CAP, || 0u64, BusySpin)
        .pin_at_core(opts.core_b)
        .handle_events_with(move |e: &u64, _seq, _eob| {
            std::hint::black_box(e);
            got += 1;
            in_burst += 1;
            if in_burst == b {
                in_burst = 0;
                // Release: the producer's Acquire load sees the burst fully drained.
                ack.store(got, Ordering::Release);
            }
        })
        .build();
    std::thread::scope(|s| {
        s.spawn(move || {
            pins.pin(opts.core_a);
            let rate = drive_producer(plan, clock, &acked, |first| {
                for i in 0..b {
                    tx.publish(|x| *x = first + i);
                }
            });
            // Dropping the producer stops and joins the disruptor's consumer thread.
            drop(tx);
            rate
        })
        .join()
        .expect("producer thread panicked")
    })
}

fn throughput_once(
    subject: Subject,
    opts: &SuiteOpts,
    clock: &Clock,
    pins: &PinLog,
    plan: Plan,
) -> f64 {
    match subject {
        Subject::Spsc => burst_generic(opts, clock, pins, plan, spsc::channel(CAP)),
        Subject::SpscBatch => {
            let (tx, rx) = spsc::channel(CAP);
            burst_generic(opts, clock, pins, plan, (SpscBatchTx(tx), SpscBatchRx(rx)))
        }
        Subject::DisruptorBusySpin => burst_disruptor_busyspin(opts, clock, pins, plan),
        Subject::DisruptorPoller => burst_generic(opts, clock, pins, plan, disruptor_polled()),
        Subject::ArrayQueue => {
            let q = Arc::new(ArrayQueue::new(CAP));
            burst_generic(opts, clock, pins, plan, (AqTx(Arc::clone(&q)), AqRx(q)))
        }
        Subject::CrossbeamChannel => burst_generic(
            opts,
            clock,
            pins,
            plan,
            crossbeam_channel::bounded::<u64>(CAP),
        ),
        Subject::StdSyncChannel => burst_generic(
            opts,
            clock,
            pins,
            plan,
            std::sync::mpsc::sync_channel::<u64>(CAP),
        ),
    }
}

fn target_note(met: bool, what: &str) -> String {
    format!(
        "{what}: {}",
        if met { "target met" } else { "target missed" }
    )
}

/// Runs the suite; see the module docs for what is measured and how.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let overhead = measurement_overhead(&clock);
    let pins = PinLog::default();
    let reps = opts.reps.max(1);
    let samples_total: usize = if opts.quick { 20_000 } else { 200_000 };
    let samples_per_rep = samples_total.div_ceil(reps);
    let items: u64 = if opts.quick { 50_000 } else { 500_000 };

    // Latency: interleaved repetitions, histograms merged per subject.
    let mut hists: Vec<LatencyHist> = LATENCY_SUBJECTS
        .iter()
        .map(|_| LatencyHist::new())
        .collect();
    for _ in 0..reps {
        for (subject, hist) in LATENCY_SUBJECTS.iter().zip(hists.iter_mut()) {
            latency_once(*subject, opts, &clock, &pins, hist, samples_per_rep);
        }
    }
    std::fs::create_dir_all(&opts.out_dir)?;
    let mut lat: Vec<(Subject, Percentiles)> = Vec::new();
    for (subject, hist) in LATENCY_SUBJECTS.iter().zip(hists.iter()) {
        hist.write_percentiles(
            &opts
                .out_dir
                .join(format!("rings-{}-latency.hdr.txt", subject.slug())),
        )?;
        lat.push((*subject, hist.percentiles(overhead.p50)));
    }

    // Throughput: interleaved repetitions, median per (subject, burst).
    let mut tput: Vec<Vec<Vec<f64>>> = THROUGHPUT_SUBJECTS
        .iter()
        .map(|_| BURSTS.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..reps {
        for (si, subject) in THROUGHPUT_SUBJECTS.iter().enumerate() {
            for (bi, burst) in BURSTS.iter().enumerate() {
                let plan = Plan::new(*burst, items);
                tput[si][bi].push(throughput_once(*subject, opts, &clock, &pins, plan));
            }
        }
    }
    let tput: Vec<Vec<f64>> = tput
        .into_iter()
        .map(|per_burst| per_burst.into_iter().map(median).collect())
        .collect();

    let mut rows = Vec::new();
    let p50_of = |s: Subject| lat.iter().find(|(x, _)| *x == s).map_or(0, |(_, p)| p.p50);
    let disruptor_p50 = p50_of(Subject::DisruptorBusySpin);
    for (subject, p) in &lat {
        let (ratio, note) = match subject {
            Subject::Spsc => {
                let r = p.p50 as f64 / disruptor_p50.max(1) as f64;
                (
                    Some(r),
                    target_note(r <= 1.2, "p50 ours/disruptor(BusySpin), want <= 1.20"),
                )
            }
            _ => (None, "peer".to_string()),
        };
        rows.push(Row {
            case: "one-way latency (RTT/2)".into(),
            subject: subject.name().into(),
            latency: Some(*p),
            throughput: None,
            ratio,
            note,
        });
    }
    let aq = THROUGHPUT_SUBJECTS
        .iter()
        .position(|s| *s == Subject::ArrayQueue)
        .unwrap_or(0);
    for (bi, burst) in BURSTS.iter().enumerate() {
        for (si, subject) in THROUGHPUT_SUBJECTS.iter().enumerate() {
            let v = tput[si][bi];
            let vs_aq = v / tput[aq][bi].max(1.0);
            let (ratio, note) = match subject {
                Subject::Spsc | Subject::SpscBatch if *burst == 100 => (
                    Some(vs_aq),
                    target_note(vs_aq >= 1.0, "items/s ours/ArrayQueue, want >= 1.00"),
                ),
                Subject::Spsc | Subject::SpscBatch => (
                    Some(vs_aq),
                    "items/s ours/ArrayQueue (no target at this burst)".into(),
                ),
                _ => (None, "peer".to_string()),
            };
            rows.push(Row {
                case: format!("burst {burst} throughput"),
                subject: subject.name().into(),
                latency: None,
                throughput: Some(v),
                ratio,
                note,
            });
        }
    }

    let pin_failures = pins.failures.load(Ordering::Relaxed);
    let method = format!(
        "payload u64, {CAP} slots each; threads pinned to cores {a} (producer / timing side) and {b} \
         (consumer / echo side){pinned}; every receiver busy-polls without pause. Latency: \
         ping-pong over two queues, RTT/2 recorded, {WARMUP_RTT} warm-up round trips then \
         {samples_per_rep} samples per repetition, {reps} interleaved repetitions merged \
         ({total_samples} samples per subject), overhead p50 subtracted; HDR files \
         rings-<subject>-latency.hdr.txt. Throughput: bursts of 1/10/100 items, producer waits \
         for the consumer's ack of each burst, {items} items (+10% warm-up) per run timed in \
         {WINDOWS} windows, a run's rate is its median window (drops windows hit by preemption), \
         reported value is the median of {reps} interleaved repetitions. Machine: noisy 2-core VM shared with other builds, so \
         tails (p99.9) mostly measure the neighbours{quick}.",
        a = opts.core_a,
        b = opts.core_b,
        pinned = if pin_failures > 0 {
            format!(" ({pin_failures} pin attempts refused: those threads ran unpinned)")
        } else {
            String::new()
        },
        total_samples = samples_per_rep * reps,
        quick = if opts.quick { "; QUICK run, not for quoting" } else { "" },
    );
    Ok(Report {
        suite: "rings".into(),
        machine: Machine::detect(),
        overhead,
        method,
        rows,
    })
}
