//! The feed stage: frames in, `MarketEvent`s out, everything journaled.
//!
//! One [`FeedStage::poll`] takes at most one frame from its [`FrameSource`] (a socket in live
//! trading, a preloaded capture in replay: the stage cannot tell the difference), stamps its
//! receive time, appends the raw bytes to the journal, decodes them with the venue codec into a
//! preallocated event buffer, appends each decoded event to the journal and publishes the events
//! to the strategy's SPSC ring. A decode failure is counted and journaled with the raw bytes as a
//! `FeedError` record; the feed keeps running. When the ring is full the events wait in the
//! stage's own buffer and no new frame is read until they are gone, so backpressure reaches the
//! socket instead of dropping data.
//!
//! Nothing here allocates after construction: the receive buffer, the event buffer and the
//! journal segment are all sized up front.

use crate::codec::{self, RecordKind};
use crate::event::{MarketEvent, Stage as StampStage};
use crate::runtime::Stage;
use ringbuffers::journal::Appender;
use ringbuffers::spsc::Producer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a [`FrameSource`] had for the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// A frame of `len` bytes was copied into the buffer.
    Frame {
        /// Bytes written into the caller's buffer.
        len: usize,
        /// Receive time, ns since the Unix epoch (recorded time in replay).
        recv_ns: u64,
    },
    /// Nothing available right now.
    Idle,
    /// The source is exhausted (end of a capture; a live source never ends).
    End,
}

/// Where frames come from: a socket (live) or a capture (replay).
pub trait FrameSource: Send {
    /// Copies the next frame into `buf`. Must not block.
    fn next_frame(&mut self, buf: &mut [u8]) -> SourcePoll;
}

/// A venue codec as the feed uses it: one frame in, events handed to `sink`.
pub trait FrameDecoder: Send {
    /// Decodes `frame` (which the decoder may modify in place). Returns the number of events
    /// given to `sink`, or a one-line reason the frame was rejected.
    fn decode(
        &mut self,
        frame: &mut [u8],
        recv_tsc: u64,
        sink: &mut dyn FnMut(MarketEvent),
    ) -> Result<usize, &'static str>;
}

/// Counters of the feed stage, readable after shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedCounters {
    /// Frames read from the source.
    pub frames: u64,
    /// Events decoded and published.
    pub events: u64,
    /// Frames the codec rejected (journaled as `FeedError`).
    pub decode_errors: u64,
    /// Frames larger than the receive buffer (journaled truncated, as `FeedError`).
    pub oversized: u64,
    /// Events beyond the per-frame event buffer (journaled, not forwarded).
    pub overflow_events: u64,
    /// Polls that found the ring full.
    pub backpressure: u64,
    /// Journal appends that failed (the frame still flows; the error is logged once).
    pub journal_errors: u64,
}

/// The feed stage. See the module documentation.
pub struct FeedStage<S: FrameSource, D: FrameDecoder> {
    source: S,
    decoder: D,
    journal: Appender,
    out: Producer<MarketEvent>,
    clock: quanta::Clock,
    buf: Box<[u8]>,
    pending: Box<[MarketEvent]>,
    pending_len: usize,
    pending_pos: usize,
    counters: FeedCounters,
    ended: bool,
    done: Arc<AtomicBool>,
    report: Arc<std::sync::Mutex<FeedCounters>>,
}

impl<S: FrameSource, D: FrameDecoder> FeedStage<S, D> {
    /// A feed reading `source`, decoding with `decoder`, journaling to `journal` and publishing
    /// to `out`. `max_frame` bounds one frame; `max_events` bounds the events of one frame (a
    /// depth update with more levels is journaled whole but forwarded only up to the bound).
    /// `done` is set once the source has ended and every event has been published, so the
    /// consumer knows it can finish. The final counters are written to `report` at shutdown.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        source: S,
        decoder: D,
        journal: Appender,
        out: Producer<MarketEvent>,
        max_frame: usize,
        max_events: usize,
        done: Arc<AtomicBool>,
        report: Arc<std::sync::Mutex<FeedCounters>>,
    ) -> Self {
        FeedStage {
            source,
            decoder,
            journal,
            out,
            clock: quanta::Clock::new(),
            buf: vec![0u8; max_frame].into_boxed_slice(),
            pending: vec![MarketEvent::PLACEHOLDER; max_events.max(1)].into_boxed_slice(),
            pending_len: 0,
            pending_pos: 0,
            counters: FeedCounters::default(),
            ended: false,
            done,
            report,
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> FeedCounters {
        self.counters
    }

    fn flush_pending(&mut self) -> usize {
        let n = self
            .out
            .push_slice(&self.pending[self.pending_pos..self.pending_len]);
        self.pending_pos += n;
        if self.pending_pos < self.pending_len {
            self.counters.backpressure += 1;
        } else {
            self.pending_pos = 0;
            self.pending_len = 0;
        }
        n
    }

    fn journal_result<T, E: std::fmt::Display>(&mut self, r: Result<T, E>) {
        if let Err(e) = r {
            if self.counters.journal_errors == 0 {
                tracing::error!(error = %e, "journal append failed; frames keep flowing");
            }
            self.counters.journal_errors += 1;
        }
    }
}

impl<S: FrameSource, D: FrameDecoder> Stage for FeedStage<S, D> {
    fn name(&self) -> &str {
        "feed"
    }

    fn poll(&mut self) -> usize {
        if self.pending_pos < self.pending_len {
            return self.flush_pending();
        }
        if self.ended {
            return 0;
        }
        let (len, recv_ns) = match self.source.next_frame(&mut self.buf) {
            SourcePoll::Frame { len, recv_ns } => (len, recv_ns),
            SourcePoll::Idle => return 0,
            SourcePoll::End => {
                self.ended = true;
                // Release: the consumer that sees `done` must also see every event pushed
                // before it (the ring's own Release/Acquire already orders the events; this
                // keeps the flag from overtaking them on weakly ordered CPUs).
                self.done.store(true, Ordering::Release);
                return 0;
            }
        };
        let recv_tsc = self.clock.raw();
        self.counters.frames += 1;
        let r = codec::append_bytes(
            &mut self.journal,
            RecordKind::RawFrame,
            0,
            recv_ns,
            &self.buf[..len.min(self.buf.len())],
        );
        self.journal_result(r);
        if len > self.buf.len() {
            self.counters.oversized += 1;
            let r = codec::append_bytes(
                &mut self.journal,
                RecordKind::FeedError,
                0,
                recv_ns,
                &self.buf,
            );
            self.journal_result(r);
            return 1;
        }

        let clock = &self.clock;
        let pending = &mut self.pending;
        let journal = &mut self.journal;
        let mut n = 0usize;
        let mut overflow = 0u64;
        let mut jerr: Option<String> = None;
        let result = self
            .decoder
            .decode(&mut self.buf[..len], recv_tsc, &mut |mut ev| {
                ev.stamps.stamp(StampStage::Decoded, clock.raw());
                if let Err(e) = codec::append(journal, &ev, 0, recv_ns) {
                    if jerr.is_none() {
                        jerr = Some(e.to_string());
                    }
                }
                if n < pending.len() {
                    pending[n] = ev;
                    n += 1;
                } else {
                    overflow += 1;
                }
            });
        if let Some(e) = jerr {
            self.journal_result::<(), _>(Err(e));
        }
        self.counters.overflow_events += overflow;
        match result {
            Ok(_) => {
                self.counters.events += n as u64;
                self.pending_len = n;
                self.pending_pos = 0;
                self.flush_pending();
            }
            Err(_reason) => {
                self.counters.decode_errors += 1;
                // The decoder may have modified the buffer in place (simd-json does); the raw
                // frame was journaled before decoding, so the error record points back to it by
                // sequence and carries the (possibly modified) bytes for quick inspection.
                let r = codec::append_bytes(
                    &mut self.journal,
                    RecordKind::FeedError,
                    0,
                    recv_ns,
                    &self.buf[..len],
                );
                self.journal_result(r);
            }
        }
        1
    }

    fn finished(&self) -> bool {
        self.ended && self.pending_pos >= self.pending_len
    }

    fn shutdown(&mut self) {
        if let Err(e) = self.journal.flush() {
            tracing::error!(error = %e, "journal flush at shutdown failed");
        }
        if let Ok(mut r) = self.report.lock() {
            *r = self.counters;
        }
    }
}

/// A capture held in memory and replayed as a [`FrameSource`], at recorded pace or as fast as
/// the feed can take it. Loading happens before the hot loop starts, so replay does no file I/O
/// and no allocation on the hot thread.
pub struct ReplaySource {
    bytes: Vec<u8>,
    frames: Vec<(u64, u32, u32)>,
    next: usize,
    speed: Option<f64>,
    clock: quanta::Clock,
    start: Option<(u64, u64)>,
}

impl ReplaySource {
    /// Builds a source from `(recv_ns, frame)` pairs. `speed`: `None` = as fast as possible,
    /// `Some(1.0)` = recorded pace, `Some(10.0)` = ten times faster.
    pub fn new<'a>(frames: impl IntoIterator<Item = (u64, &'a [u8])>, speed: Option<f64>) -> Self {
        let mut bytes = Vec::new();
        let mut index = Vec::new();
        for (ns, f) in frames {
            index.push((ns, bytes.len() as u32, f.len() as u32));
            bytes.extend_from_slice(f);
        }
        ReplaySource {
            bytes,
            frames: index,
            next: 0,
            speed,
            clock: quanta::Clock::new(),
            start: None,
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl FrameSource for ReplaySource {
    fn next_frame(&mut self, buf: &mut [u8]) -> SourcePoll {
        let Some(&(ns, off, len)) = self.frames.get(self.next) else {
            return SourcePoll::End;
        };
        if let Some(speed) = self.speed {
            let now = self.clock.raw();
            let (t0, ns0) = *self.start.get_or_insert((now, ns));
            let due = ((ns.saturating_sub(ns0)) as f64 / speed) as u64;
            if self.clock.delta_as_nanos(t0, now) < due {
                return SourcePoll::Idle;
            }
        }
        self.next += 1;
        let (off, len) = (off as usize, len as usize);
        let n = len.min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[off..off + n]);
        SourcePoll::Frame { len, recv_ns: ns }
    }
}

/// The Binance codec as the feed's decoder: stream messages through the scanner, and REST depth
/// snapshots (which name no symbol on spot) for the instrument the snapshot was requested for.
pub struct BinanceFeedDecoder {
    scanner: crate::venue::binance::Scanner<'static>,
    snapshot_instrument: Option<crate::instrument::InstrumentId>,
}

impl BinanceFeedDecoder {
    /// Wraps `scanner`; depth snapshots in the frame stream are attributed to
    /// `snapshot_instrument` (a recorded single-symbol capture interleaves them with the diffs).
    pub fn new(
        scanner: crate::venue::binance::Scanner<'static>,
        snapshot_instrument: Option<crate::instrument::InstrumentId>,
    ) -> Self {
        BinanceFeedDecoder { scanner, snapshot_instrument }
    }

    /// Decode counters by message kind and error kind.
    pub fn stats(&self) -> &crate::venue::binance::DecodeStats {
        self.scanner.stats()
    }
}

/// True when `frame` is a REST depth snapshot body (`{"lastUpdateId":...`).
fn is_depth_snapshot(frame: &[u8]) -> bool {
    let start = frame.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(frame.len());
    frame[start..].starts_with(b"{\"lastUpdateId\"")
}

impl FrameDecoder for BinanceFeedDecoder {
    #[inline]
    fn decode(
        &mut self,
        frame: &mut [u8],
        recv_tsc: u64,
        sink: &mut dyn FnMut(MarketEvent),
    ) -> Result<usize, &'static str> {
        let r = match self.snapshot_instrument {
            Some(inst) if is_depth_snapshot(frame) => {
                self.scanner.decode_depth_snapshot(frame, inst, recv_tsc, &mut |e| sink(e))
            }
            _ => self.scanner.decode(frame, recv_tsc, &mut |e| sink(e)),
        };
        r.map(|d| d.events).map_err(|e| e.kind().name())
    }
}
