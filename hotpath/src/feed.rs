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
//!
//! A live source also reports what happened to its connection ([`FrameSource::take_event`]):
//! the stage journals each [`SourceEvent`] as a [`RecordKind::Gap`] record (one text line,
//! `market_data_connection_lost ...` / `market_data_connection_restored ...`) in stream order,
//! before any frame of the new session, and counts losses and restorations in
//! [`FeedCounters`]. That record is the resync marker: every consumer of the journal (the cold
//! path's alerting, replay, the book rebuilt from the journal) sees exactly where the data has a
//! hole and where the diff chains restart. The stage also resets its books at both records
//! (every book is unproven from the loss until its next snapshot is joined), because a new
//! session's diffs cannot continue the old session's chain.
//!
//! # Snapshots
//!
//! A book in [`SyncMode::Snapshot`](crate::book::SyncMode::Snapshot) is proven only once a REST
//! depth snapshot has been joined to its diff stream. The books say when they need one
//! ([`BookSync::take_snapshot_request`](crate::book::BookSync::take_snapshot_request): at start,
//! after a gap, after a reset); the stage passes each such request to its source through
//! [`FrameSource::request_snapshot`], right after the frame (or connection event) that caused
//! it. The source fetches it off the hot thread (the live source through a
//! [`SnapshotFetcher`](crate::snapshot::SnapshotFetcher)) and hands the body back as an ordinary
//! frame whose [`SourcePoll::Frame::rest`] names the instrument, so it is journaled as a
//! raw frame and decoded by [`FrameDecoder::decode`] like everything else. The request goes
//! through the source rather than a channel the stage owns because the source is what knows the
//! symbols, the connection epoch (an answer to a request of a previous session is stale) and
//! how to deliver in stream order; sources that cannot fetch (replay) keep the default, which
//! declines, and their captures carry the snapshots inline.

use crate::book::{BookSet, GapInfo, MAX_GAP_PAYLOAD};
use crate::codec::{self, RecordKind};
use crate::event::{DepthIds, MarketEvent, MarketKind, Stage as StampStage};
use crate::instrument::InstrumentId;
use crate::runtime::Stage;
use ringbuffers::journal::Appender;
use ringbuffers::spsc::Producer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A REST response body delivered as a frame, and what it was fetched for. Spot depth and
/// klines bodies name no symbol, so the attribution travels with the frame (and into the
/// journal's `RawFrame` flags, see [`raw_frame_flags`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestBody {
    /// A depth snapshot of the instrument (the books join it to the diff stream).
    Depth(InstrumentId),
    /// Candle history of the instrument (`GET /api/v3/klines`): the strategy warms up from it.
    Klines(InstrumentId),
}

impl RestBody {
    /// The instrument the body was fetched for.
    pub const fn instrument(self) -> InstrumentId {
        match self {
            RestBody::Depth(id) | RestBody::Klines(id) => id,
        }
    }
}

/// What a [`FrameSource`] had for the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// A frame of `len` bytes was copied into the buffer.
    Frame {
        /// Bytes written into the caller's buffer.
        len: usize,
        /// Receive time, ns since the Unix epoch (recorded time in replay).
        recv_ns: u64,
        /// `Some` when the frame is a REST body fetched for an instrument (a depth snapshot,
        /// see [`FrameSource::request_snapshot`], or candle history); `None` for stream
        /// messages and for a capture's frames (its inline snapshots are attributed by the
        /// decoder).
        rest: Option<RestBody>,
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

    /// The oldest connection event not yet taken, if any. The feed drains this after every
    /// [`next_frame`](Self::next_frame) call and journals what it gets *before* the frame that
    /// call returned, so an event reported during a call precedes that call's frame in the
    /// journal. Sources without a connection (replay) keep the default, which has none.
    fn take_event(&mut self) -> Option<SourceEvent> {
        None
    }

    /// Asks for a REST depth snapshot of `instrument`, to be delivered later as a frame with
    /// [`SourcePoll::Frame::rest`] set. Returns true when the request was accepted (or
    /// one is already on its way). Must not block or allocate. Sources that cannot fetch
    /// snapshots (replay) keep the default, which declines.
    fn request_snapshot(&mut self, instrument: InstrumentId) -> bool {
        let _ = instrument;
        false
    }
}

/// Longest payload of a [`SourceEvent`] (its journal record), in bytes.
pub const SOURCE_EVENT_MAX: usize = 256;

/// What happened to a source's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceEventKind {
    /// The source's first session is up. Consumers start from an empty state (`resync=1`).
    Connected,
    /// An established session ended: nothing arrives until the matching
    /// [`ConnectionRestored`](Self::ConnectionRestored); the data of the interval is lost.
    ConnectionLost,
    /// A new session is up after a loss. Every sequence chain restarts: consumers must resync
    /// (books take a new snapshot, trade-id continuity checks restart).
    ConnectionRestored,
}

impl SourceEventKind {
    /// Every kind.
    pub const ALL: [SourceEventKind; 3] = [
        SourceEventKind::Connected,
        SourceEventKind::ConnectionLost,
        SourceEventKind::ConnectionRestored,
    ];

    /// The first word of the journal record (what the cold path alerts on).
    pub const fn tag(self) -> &'static str {
        match self {
            SourceEventKind::Connected => "market_data_connected",
            SourceEventKind::ConnectionLost => "market_data_connection_lost",
            SourceEventKind::ConnectionRestored => "market_data_connection_restored",
        }
    }

    /// The kind of a journal record payload written for a [`SourceEvent`], if it is one (Gap
    /// records also hold book gaps, which start with another tag).
    pub fn from_payload(payload: &[u8]) -> Option<SourceEventKind> {
        let word = payload.split(|&b| b == b' ').next()?;
        Self::ALL.into_iter().find(|k| k.tag().as_bytes() == word)
    }
}

/// A connection event of a [`FrameSource`], with its journal payload preformatted in place
/// (`<tag> key=value ...`, at most [`SOURCE_EVENT_MAX`] bytes, cut at a character boundary),
/// so that reporting one allocates nothing.
#[derive(Clone, Copy)]
pub struct SourceEvent {
    kind: SourceEventKind,
    at_ns: u64,
    len: u16,
    payload: [u8; SOURCE_EVENT_MAX],
}

impl SourceEvent {
    /// An event of `kind` at `at_ns` (ns since the Unix epoch, the journal record's timestamp)
    /// whose payload is the kind's [tag](SourceEventKind::tag), a space and `detail`.
    pub fn new(kind: SourceEventKind, at_ns: u64, detail: std::fmt::Arguments<'_>) -> Self {
        use std::fmt::Write as _;
        let mut ev = SourceEvent {
            kind,
            at_ns,
            len: 0,
            payload: [0; SOURCE_EVENT_MAX],
        };
        let mut w = Truncating {
            buf: &mut ev.payload,
            len: 0,
        };
        let _ = write!(w, "{} {detail}", kind.tag());
        ev.len = w.len as u16;
        ev
    }

    /// What happened.
    pub fn kind(&self) -> SourceEventKind {
        self.kind
    }

    /// When, in ns since the Unix epoch.
    pub fn at_ns(&self) -> u64 {
        self.at_ns
    }

    /// The journal payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload[..self.len as usize]
    }

    /// The journal payload as text.
    pub fn text(&self) -> &str {
        // Only whole characters are ever written (see `Truncating`).
        std::str::from_utf8(self.payload()).unwrap_or("")
    }
}

impl std::fmt::Debug for SourceEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceEvent")
            .field("kind", &self.kind)
            .field("at_ns", &self.at_ns)
            .field("text", &self.text())
            .finish()
    }
}

/// `fmt::Write` into a fixed buffer that keeps what fits, cutting at a character boundary.
struct Truncating<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// What a decoded frame produced besides its events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Events handed to the sink.
    pub events: usize,
    /// A depth update (or snapshot, when the flag is true) that carried no levels: it emits no
    /// event but its update ids still move the instrument's book chain.
    pub empty_depth: Option<(InstrumentId, DepthIds, bool)>,
}

/// A venue codec as the feed uses it: one frame in, events handed to `sink`.
pub trait FrameDecoder: Send {
    /// Decodes `frame` (which the decoder may modify in place). `rest` is the source's
    /// [`SourcePoll::Frame::rest`]: `Some` when the frame is a REST body fetched for an
    /// instrument. Returns what the frame produced, or a one-line reason it was rejected.
    fn decode(
        &mut self,
        frame: &mut [u8],
        rest: Option<RestBody>,
        recv_tsc: u64,
        sink: &mut dyn FnMut(MarketEvent),
    ) -> Result<FrameInfo, &'static str>;
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
    /// Book sequence gaps and sync failures (each journaled as a `Gap` record; the book
    /// resyncs from its next snapshot).
    pub book_gaps: u64,
    /// Established source sessions that were lost ([`SourceEventKind::ConnectionLost`]).
    pub disconnects: u64,
    /// Sessions re-established after a loss ([`SourceEventKind::ConnectionRestored`]).
    pub reconnects: u64,
    /// Book snapshot requests the source accepted ([`FrameSource::request_snapshot`]).
    pub snapshot_requests: u64,
    /// Snapshot frames delivered by the source ([`RestBody::Depth`]).
    pub snapshots: u64,
    /// Candle-history frames delivered by the source ([`RestBody::Klines`]).
    pub histories: u64,
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
    books: BookSet,
    /// Highest instrument index with a book (the snapshot-request sweep's bound).
    books_end: u32,
    /// Some book may have a snapshot request pending.
    snapshot_sweep: bool,
    gap_buf: [u8; MAX_GAP_PAYLOAD],
    counters: FeedCounters,
    ended: bool,
    done: Arc<AtomicBool>,
    report: Arc<std::sync::Mutex<FeedCounters>>,
}

/// The largest frame the engine's feed takes (1 MiB: a full 5,000-level depth snapshot body
/// fits with room to spare).
pub const ENGINE_MAX_FRAME: usize = 1 << 20;
/// The most events one frame may publish in the engine's feed (a depth update's levels).
pub const ENGINE_MAX_EVENTS: usize = 16_384;

/// A feed stage as the engine wires it ([`FeedStage::engine`]): the stage, the flag it sets
/// once its source has ended and everything is published, and its counters at shutdown.
pub type EngineFeed<S, D> = (
    FeedStage<S, D>,
    Arc<AtomicBool>,
    Arc<std::sync::Mutex<FeedCounters>>,
);

impl<S: FrameSource, D: FrameDecoder> FeedStage<S, D> {
    /// The feed as every engine command and benchmark wires it: [`ENGINE_MAX_FRAME`],
    /// [`ENGINE_MAX_EVENTS`], `books` kept from the depth stream, a fresh done flag and
    /// counters, so what is measured is what runs.
    pub fn engine(
        source: S,
        decoder: D,
        journal: Appender,
        out: Producer<MarketEvent>,
        books: BookSet,
    ) -> EngineFeed<S, D> {
        let done = Arc::new(AtomicBool::new(false));
        let report = Arc::new(std::sync::Mutex::new(FeedCounters::default()));
        let stage = FeedStage::new(
            source,
            decoder,
            journal,
            out,
            ENGINE_MAX_FRAME,
            ENGINE_MAX_EVENTS,
            done.clone(),
            report.clone(),
        )
        .with_books(books);
        (stage, done, report)
    }

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
            books: BookSet::default(),
            books_end: 0,
            snapshot_sweep: false,
            gap_buf: [0; MAX_GAP_PAYLOAD],
            counters: FeedCounters::default(),
            ended: false,
            done,
            report,
        }
    }

    /// Keeps `books` (one per instrument, see [`BookSet::for_table`]) from the depth stream:
    /// sequence gaps are journaled as `Gap` records and every published event carries
    /// [`MarketEvent::FLAG_BOOK_PROVEN`] while its instrument's book is proven. Without books
    /// (the default) no event carries the flag. Every book's snapshot requests go to the
    /// source ([`FrameSource::request_snapshot`]), starting with the initial one at the first
    /// poll.
    pub fn with_books(mut self, books: BookSet) -> Self {
        self.books_end = books
            .iter()
            .map(|b| b.instrument().0.saturating_add(1))
            .max()
            .unwrap_or(0);
        self.books = books;
        self.snapshot_sweep = true;
        self
    }

    /// The books the feed keeps.
    pub fn books(&self) -> &BookSet {
        &self.books
    }

    /// Counters so far.
    pub fn counters(&self) -> FeedCounters {
        self.counters
    }

    /// Runs the decoded events of one frame through the books, journaling each gap, and marks
    /// the events of proven books.
    fn apply_books(
        &mut self,
        n: usize,
        empty_depth: Option<(InstrumentId, DepthIds, bool)>,
        recv_ns: u64,
    ) {
        let journal = &mut self.journal;
        let gap_buf = &mut self.gap_buf;
        let counters = &mut self.counters;
        let sweep = &mut self.snapshot_sweep;
        let mut on_gap = |inst: InstrumentId, g: &GapInfo| {
            // A gap makes the book ask for a new snapshot.
            *sweep = true;
            counters.book_gaps += 1;
            let len = g.write_payload(inst, gap_buf);
            if codec::append_bytes(journal, RecordKind::Gap, 0, recv_ns, &gap_buf[..len]).is_err() {
                counters.journal_errors += 1;
            }
        };
        for ev in self.pending[..n].iter_mut() {
            self.books.on_event(ev, &mut on_gap);
            if self.books.proven(ev.instrument) {
                ev.flags |= MarketEvent::FLAG_BOOK_PROVEN;
            }
        }
        if let Some((inst, ids, snapshot)) = empty_depth {
            self.books
                .on_empty_update(inst, ids, snapshot, 0, &mut on_gap);
        }
    }

    /// Passes every pending book snapshot request to the source (O(instruments), only after a
    /// gap, a reset or at start).
    fn request_snapshots(&mut self) {
        if !self.snapshot_sweep {
            return;
        }
        self.snapshot_sweep = false;
        for i in 0..self.books_end {
            let id = InstrumentId(i);
            let Some(book) = self.books.get_mut(id) else {
                continue;
            };
            // A source that declines (replay) consumes the request: its capture carries the
            // snapshots inline.
            if book.take_snapshot_request() && self.source.request_snapshot(id) {
                self.counters.snapshot_requests += 1;
            }
        }
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

    /// Journals a connection event as a Gap record and counts it.
    fn on_source_event(&mut self, ev: &SourceEvent) {
        match ev.kind() {
            SourceEventKind::Connected => {}
            SourceEventKind::ConnectionLost => self.counters.disconnects += 1,
            SourceEventKind::ConnectionRestored => self.counters.reconnects += 1,
        }
        match ev.kind() {
            // A book that no longer receives its updates is not proven.
            SourceEventKind::ConnectionLost => self.books.reset_all(),
            // The new session's diffs cannot continue the old chain: every book waits for a
            // new snapshot. The requests (each reset makes one) go out now, not at the loss: a
            // snapshot fetched while the stream is down would predate the new session's
            // first diffs.
            SourceEventKind::ConnectionRestored => {
                self.books.reset_all();
                self.snapshot_sweep = true;
            }
            SourceEventKind::Connected => {}
        }
        let r = codec::append_bytes(
            &mut self.journal,
            RecordKind::Gap,
            0,
            ev.at_ns(),
            ev.payload(),
        );
        self.journal_result(r);
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
        let polled = self.source.next_frame(&mut self.buf);
        // Connection events reported during that call come first in the journal.
        let mut source_events = 0;
        while let Some(ev) = self.source.take_event() {
            self.on_source_event(&ev);
            source_events += 1;
        }
        self.request_snapshots();
        let (len, recv_ns, rest) = match polled {
            SourcePoll::Frame { len, recv_ns, rest } => (len, recv_ns, rest),
            SourcePoll::Idle => return source_events,
            SourcePoll::End => {
                self.ended = true;
                // Release: the consumer that sees `done` must also see every event pushed
                // before it (the ring's own Release/Acquire already orders the events; this
                // keeps the flag from overtaking them on weakly ordered CPUs).
                self.done.store(true, Ordering::Release);
                return source_events;
            }
        };
        let recv_tsc = self.clock.raw();
        self.counters.frames += 1;
        match rest {
            Some(RestBody::Depth(_)) => self.counters.snapshots += 1,
            Some(RestBody::Klines(_)) => self.counters.histories += 1,
            None => {}
        }
        let r = codec::append_bytes(
            &mut self.journal,
            RecordKind::RawFrame,
            raw_frame_flags(rest),
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

        // Decode into the event buffer; the events reach the ring before they are journaled,
        // so the strategy is not kept waiting for a many-level depth frame's appends (the raw
        // frame is already in the journal, and a crash between the two is recovered by
        // replaying it). Events beyond the buffer are journaled at once and counted.
        let clock = &self.clock;
        let pending = &mut self.pending;
        let journal = &mut self.journal;
        let mut n = 0usize;
        let mut overflow = 0u64;
        let mut journal_errors = 0u64;
        let result = self
            .decoder
            .decode(&mut self.buf[..len], rest, recv_tsc, &mut |mut ev| {
                ev.stamps.stamp(StampStage::Decoded, clock.raw());
                if n < pending.len() {
                    pending[n] = ev;
                    n += 1;
                } else {
                    overflow += 1;
                    if codec::append(journal, &ev, 0, recv_ns).is_err() {
                        journal_errors += 1;
                    }
                }
            });
        self.counters.overflow_events += overflow;
        self.counters.journal_errors += journal_errors;
        match result {
            Ok(info) => {
                self.apply_books(n, info.empty_depth, recv_ns);
                self.request_snapshots();
                self.counters.events += n as u64;
                self.pending_len = n;
                self.pending_pos = 0;
                self.flush_pending();
                for i in 0..n {
                    let r = codec::append(&mut self.journal, &self.pending[i], 0, recv_ns);
                    self.journal_result(r);
                }
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

/// `RawFrame` journal flag: the frame is a REST depth snapshot; the low 14 bits
/// ([`RAW_FLAG_INSTRUMENT`]) hold the instrument it was fetched for. A live session fetches
/// snapshots for several symbols and the spot body names none, so without this a replay of the
/// journal could not tell whose book a snapshot belongs to.
pub const RAW_FLAG_SNAPSHOT: u16 = 0x8000;

/// `RawFrame` journal flag: the frame is a REST klines body (candle history) fetched for the
/// instrument in the low 14 bits; same reason as [`RAW_FLAG_SNAPSHOT`].
pub const RAW_FLAG_KLINES: u16 = 0x4000;

/// The instrument bits of a `RawFrame`'s flags.
pub const RAW_FLAG_INSTRUMENT: u16 = 0x3FFF;

/// The `RawFrame` journal flags of a frame with `rest` (see [`RAW_FLAG_SNAPSHOT`] and
/// [`RAW_FLAG_KLINES`]). An instrument id beyond the 14 bits cannot be attributed and gets no
/// flag (tables hold far fewer instruments).
#[inline]
pub const fn raw_frame_flags(rest: Option<RestBody>) -> u16 {
    let (flag, id) = match rest {
        Some(RestBody::Depth(id)) => (RAW_FLAG_SNAPSHOT, id),
        Some(RestBody::Klines(id)) => (RAW_FLAG_KLINES, id),
        None => return 0,
    };
    if id.0 <= RAW_FLAG_INSTRUMENT as u32 {
        flag | id.0 as u16
    } else {
        0
    }
}

/// What a journaled `RawFrame` with `flags` was fetched for, if it is a REST body.
#[inline]
pub const fn raw_frame_rest(flags: u16) -> Option<RestBody> {
    let id = InstrumentId((flags & RAW_FLAG_INSTRUMENT) as u32);
    if flags & RAW_FLAG_SNAPSHOT != 0 {
        Some(RestBody::Depth(id))
    } else if flags & RAW_FLAG_KLINES != 0 {
        Some(RestBody::Klines(id))
    } else {
        None
    }
}

/// A capture held in memory and replayed as a [`FrameSource`], at recorded pace or as fast as
/// the feed can take it. Loading happens before the hot loop starts, so replay does no file I/O
/// and no allocation on the hot thread.
pub struct ReplaySource {
    bytes: Vec<u8>,
    frames: Vec<(u64, u32, u32)>,
    /// Per frame, the REST body it is (empty when no frame is one).
    rest: Vec<Option<RestBody>>,
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
            rest: Vec::new(),
            next: 0,
            speed,
            clock: quanta::Clock::new(),
            start: None,
        }
    }

    /// Builds a source from `(recv_ns, frame, rest)`: a journal's raw frames, whose REST
    /// bodies say which instrument they were fetched for (see [`raw_frame_rest`]).
    pub fn with_rest_bodies<'a>(
        frames: impl IntoIterator<Item = (u64, &'a [u8], Option<RestBody>)>,
        speed: Option<f64>,
    ) -> Self {
        let mut rest = Vec::new();
        let mut src = ReplaySource::new(
            frames.into_iter().map(|(ns, f, r)| {
                rest.push(r);
                (ns, f)
            }),
            speed,
        );
        if rest.iter().any(Option::is_some) {
            src.rest = rest;
        }
        src
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
        let rest = self.rest.get(self.next).copied().flatten();
        self.next += 1;
        let (off, len) = (off as usize, len as usize);
        let n = len.min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[off..off + n]);
        SourcePoll::Frame {
            len,
            recv_ns: ns,
            rest,
        }
    }
}

/// The Binance codec as the feed's decoder: stream messages through the scanner, REST depth
/// snapshots (which name no symbol on spot) for the instrument the snapshot was requested for
/// (the frame's [`RestBody::Depth`] when the source fetched it, else, for a recorded capture's
/// inline snapshot, the single instrument given at construction), and REST klines bodies
/// ([`RestBody::Klines`]) into history candles
/// ([`decode_rest_klines`](crate::venue::binance::klines::decode_rest_klines)).
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
        BinanceFeedDecoder {
            scanner,
            snapshot_instrument,
        }
    }

    /// Decode counters by message kind and error kind.
    pub fn stats(&self) -> &crate::venue::binance::DecodeStats {
        self.scanner.stats()
    }
}

/// True when `frame` is a REST depth snapshot body (`{"lastUpdateId":...`).
fn is_depth_snapshot(frame: &[u8]) -> bool {
    let start = frame
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(frame.len());
    frame[start..].starts_with(b"{\"lastUpdateId\"")
}

impl FrameDecoder for BinanceFeedDecoder {
    #[inline]
    fn decode(
        &mut self,
        frame: &mut [u8],
        rest: Option<RestBody>,
        recv_tsc: u64,
        sink: &mut dyn FnMut(MarketEvent),
    ) -> Result<FrameInfo, &'static str> {
        let snapshot_of = match rest {
            Some(RestBody::Klines(inst)) => {
                return self.decode_klines(frame, inst, recv_tsc, sink);
            }
            Some(RestBody::Depth(inst)) => Some(inst),
            None => None,
        };
        let (r, snapshot) = match snapshot_of.or(self.snapshot_instrument) {
            Some(inst) if snapshot_of.is_some() || is_depth_snapshot(frame) => (
                self.scanner
                    .decode_depth_snapshot(frame, inst, recv_tsc, &mut |e| sink(e)),
                true,
            ),
            _ => (
                self.scanner.decode(frame, recv_tsc, &mut |e| sink(e)),
                false,
            ),
        };
        let d = r.map_err(|e| e.kind().name())?;
        let empty_depth = match (d.kind, d.events, d.depth) {
            (MarketKind::DepthLevel, 0, Some(ids)) => Some((d.instrument, ids, snapshot)),
            _ => None,
        };
        Ok(FrameInfo {
            events: d.events,
            empty_depth,
        })
    }
}

impl BinanceFeedDecoder {
    /// A klines body: its closed candles as history events of `inst`.
    fn decode_klines(
        &mut self,
        frame: &[u8],
        inst: InstrumentId,
        recv_tsc: u64,
        sink: &mut dyn FnMut(MarketEvent),
    ) -> Result<FrameInfo, &'static str> {
        let Some(_) = self.scanner.table().try_get(inst) else {
            return Err("klines for an unknown instrument");
        };
        let iref = self.scanner.table().instrument_ref(inst);
        let events = crate::venue::binance::klines::decode_rest_klines(frame, iref, recv_tsc, sink)
            .map_err(|e| e.reason())?;
        Ok(FrameInfo {
            events,
            empty_depth: None,
        })
    }
}
