//! The `io_uring` driver: same [`Transport`] contract, no syscall on an idle busy-poll.
//!
//! Set-up (cold): a ring with `COOP_TASKRUN | TASKRUN_FLAG` (completions are processed when we
//! enter the kernel, and the kernel raises a flag in shared memory when there is work, so an idle
//! busy-poll costs a memory load instead of a `recv` syscall), the socket registered as fixed file
//! 0, a receive and a send buffer registered as fixed buffers 0 and 1, and - where the kernel
//! supports it - a provided-buffer ring for multishot receive.
//!
//! Receive: one multishot `RECV` keeps posting completions, each naming the provided buffer the
//! kernel filled; `read_into` copies from it into the caller's buffer and hands the buffer back to
//! the ring. If the kernel lacks buffer rings or multishot receive (before 5.19 / 6.0), or
//! [`UringConfig::multishot`](super::UringConfig) is off, the driver logs it and falls back to
//! single-shot `READ_FIXED` into the registered receive buffer.
//!
//! Send: `write` copies into the registered send buffer and submits `WRITE_FIXED` from it (one in
//! flight at a time, short writes resubmitted), so the caller's buffer is free on return.
//!
//! If `io_uring` itself is unusable (`ENOSYS`, `EPERM` from seccomp in containers,
//! `kernel.io_uring_disabled`), construction fails with [`NetError::IoUringUnavailable`] explaining
//! why; [`probe_io_uring`] reports what this machine supports without opening a connection.
//!
//! Memory safety: the kernel writes into our buffers asynchronously, so they must outlive every
//! in-flight operation. The buffers are heap allocations owned by the transport (stable while it
//! moves), and `Drop` cancels and reaps all in-flight operations before they are freed; if that
//! cannot be confirmed the buffers are leaked rather than freed.

use std::alloc::Layout;
use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, CancelBuilder, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use socket2::{SockAddr, Socket};

use super::sockopt::{self, BusyPollStatus};
use super::{DriverKind, Interest, NetError, Readiness, SocketConfig, Transport, UringConfig};

const UD_CONNECT: u64 = 1;
const UD_RECV_MULTI: u64 = 2;
const UD_RECV_FIXED: u64 = 3;
const UD_SEND: u64 = 4;
const UD_CANCEL: u64 = 5;

const FIXED_FD: Fixed = Fixed(0);
const RX_BUF_INDEX: u16 = 0;
const TX_BUF_INDEX: u16 = 1;
const BUF_GROUP: u16 = 0;

/// How the driver receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvMode {
    /// Multishot `RECV` into a provided-buffer ring.
    Multishot,
    /// Single-shot `READ_FIXED` into the registered receive buffer.
    SingleShot,
}

/// What [`probe_io_uring`] found on this machine.
#[derive(Clone, Debug)]
pub struct UringProbe {
    /// A ring could be created.
    pub available: bool,
    /// Why not, if not.
    pub unavailable_reason: Option<String>,
    /// `COOP_TASKRUN | TASKRUN_FLAG` ring set-up is accepted (kernel >= 5.19).
    pub coop_taskrun: bool,
    /// A provided-buffer ring could be registered (kernel >= 5.19).
    pub buf_ring: bool,
    /// A multishot receive delivered data with `IORING_CQE_F_MORE` set (kernel >= 6.0).
    pub multishot_recv: bool,
}

fn unavailable(what: &str, e: io::Error) -> NetError {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS: too old or CONFIG_IO_URING=n)",
        Some(libc::EPERM) => {
            "io_uring is forbidden (EPERM: seccomp profile of the container, or \
             kernel.io_uring_disabled=2, or =1 without membership of io_uring_group)"
        }
        Some(libc::ENOMEM) => {
            "not enough locked memory for the ring (ENOMEM: raise RLIMIT_MEMLOCK)"
        }
        _ => "unexpected error",
    };
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| format!("; kernel.io_uring_disabled={}", s.trim()))
        .unwrap_or_default();
    NetError::IoUringUnavailable {
        reason: format!("{what}: {why}{sysctl}"),
        source: e,
    }
}

/// Create a ring, preferring cooperative task running with the shared-memory task-run flag.
fn build_ring(entries: u32, cq_entries: u32) -> Result<(IoUring, bool), NetError> {
    match IoUring::builder()
        .setup_cqsize(cq_entries)
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(entries)
    {
        Ok(r) => Ok((r, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::info!("io_uring: COOP_TASKRUN unsupported (kernel < 5.19); using defaults");
            IoUring::builder()
                .setup_cqsize(cq_entries)
                .build(entries)
                .map(|r| (r, false))
                .map_err(|e| unavailable("io_uring_setup", e))
        }
        Err(e) => Err(unavailable("io_uring_setup", e)),
    }
}

/// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`) and the buffers it hands out.
struct BufRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    entries: u16,
    bufs: Box<[u8]>,
    buf_size: u32,
    tail: u16,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("entries", &self.entries)
            .field("buf_size", &self.buf_size)
            .finish()
    }
}

impl BufRing {
    /// Allocate and register a ring of `entries` (power of two) buffers of `buf_size` bytes.
    fn register(ring: &IoUring, entries: u16, buf_size: u32) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring_buffers must be a power of two <= 32768",
            ));
        }
        let ring_layout =
            Layout::from_size_align(entries as usize * std::mem::size_of::<BufRingEntry>(), 4096)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the layout has non-zero size (entries >= 1) and a valid power-of-two alignment.
        let mem = unsafe { std::alloc::alloc_zeroed(ring_layout) } as *mut BufRingEntry;
        if mem.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let mut br = BufRing {
            ring: mem,
            ring_layout,
            entries,
            bufs: vec![0u8; entries as usize * buf_size as usize].into_boxed_slice(),
            buf_size,
            tail: 0,
        };
        // SAFETY: `mem` is a zeroed, page-aligned array of `entries` ring entries that stays
        // allocated until `BufRing::drop`, which runs only after the ring that uses it is gone
        // (the transport drops `ring` first and reaps every operation before that).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(mem as u64, entries, BUF_GROUP, 0)?;
        }
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    fn buf(&self, bid: u16) -> &[u8] {
        let start = bid as usize * self.buf_size as usize;
        &self.bufs[start..start + self.buf_size as usize]
    }

    /// Put buffer `bid` at the ring's tail (not yet visible to the kernel).
    fn push(&mut self, bid: u16) {
        let idx = (self.tail & (self.entries - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * self.buf_size as u64;
        // SAFETY: `idx < entries`, so the entry is inside the ring allocation; the kernel only
        // reads entries before the published tail, and this one is at or after it.
        let e = unsafe { &mut *self.ring.add(idx) };
        e.set_addr(addr);
        e.set_len(self.buf_size);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Make pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field lives inside the first ring entry, which is allocated, aligned
        // for u16, and shared with the kernel, which reads it atomically; release ordering makes
        // the entry writes visible before the new tail.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ring as *mut u8, self.ring_layout) }
    }
}

/// `io_uring` TCP connection (see the module docs).
pub struct UringTransport {
    // Dropped first: closing the ring fd after `Drop::drop` has reaped every operation.
    ring: IoUring,
    sock: Socket,
    /// Destination for the CONNECT operation; boxed so its address is stable.
    addr: Box<SockAddr>,
    connected: bool,
    mode: RecvMode,
    multishot_delivered: bool,
    bufring: Option<BufRing>,
    /// Completed provided buffers not yet read: (buffer id, length).
    ready: VecDeque<(u16, u32)>,
    /// Partially read provided buffer: (buffer id, offset, length).
    cur: Option<(u16, u32, u32)>,
    recv_armed: bool,
    rx: Box<[u8]>,
    rx_off: usize,
    rx_len: usize,
    tx: Box<[u8]>,
    tx_head: usize,
    tx_tail: usize,
    /// Bytes of the `WRITE_FIXED` in flight, starting at `tx_head` (0: none).
    tx_inflight: usize,
    eof: bool,
    error: Option<io::Error>,
    /// Operations submitted whose final completion has not been reaped.
    inflight: u32,
    busy_poll: BusyPollStatus,
    coop_taskrun: bool,
}

impl std::fmt::Debug for UringTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringTransport")
            .field("fd", &self.sock.as_raw_fd())
            .field("connected", &self.connected)
            .field("mode", &self.mode)
            .field("inflight", &self.inflight)
            .finish()
    }
}

impl UringTransport {
    /// Create the ring, register the socket and buffers, and submit a CONNECT to `addr`.
    pub fn connect(addr: SocketAddr, cfg: &SocketConfig) -> Result<Self, NetError> {
        let (sock, busy) = sockopt::new_tcp_socket(&addr, cfg)?;
        let mut t = Self::setup(sock, busy, &cfg.uring, false)?;
        t.addr = Box::new(SockAddr::from(addr));
        let e = opcode::Connect::new(FIXED_FD, t.addr.as_ptr().cast(), t.addr.len())
            .build()
            .user_data(UD_CONNECT);
        t.push(&e)?;
        t.submit()?;
        Ok(t)
    }

    /// Wrap an already connected stream (e.g. accepted by a server), applying the options.
    pub fn from_std(stream: std::net::TcpStream, cfg: &SocketConfig) -> Result<Self, NetError> {
        let sock = Socket::from(stream);
        let busy = sockopt::apply_options(&sock, cfg)?;
        let mut t = Self::setup(sock, busy, &cfg.uring, true)?;
        t.kick()?;
        Ok(t)
    }

    fn setup(
        sock: Socket,
        busy_poll: BusyPollStatus,
        cfg: &UringConfig,
        connected: bool,
    ) -> Result<Self, NetError> {
        if cfg.recv_buffer == 0 || cfg.send_buffer == 0 || cfg.entries < 4 {
            return Err(NetError::Config(
                "io_uring buffers and entries must be non-zero",
            ));
        }
        // Blocking mode: io_uring then arms its internal poll on EAGAIN instead of completing
        // the operation with -EAGAIN (which it does for O_NONBLOCK files).
        sock.set_nonblocking(false)?;
        let cq = cfg.entries * 2 + cfg.ring_buffers as u32;
        let (ring, coop_taskrun) = build_ring(cfg.entries, cq)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| unavailable("IORING_REGISTER_PROBE", e))?;
        for (code, name) in [
            (opcode::Connect::CODE, "CONNECT"),
            (opcode::ReadFixed::CODE, "READ_FIXED"),
            (opcode::WriteFixed::CODE, "WRITE_FIXED"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(unavailable(
                    &format!("opcode {name} not supported by this kernel"),
                    io::Error::from_raw_os_error(libc::EOPNOTSUPP),
                ));
            }
        }
        ring.submitter()
            .register_files(&[sock.as_raw_fd()])
            .map_err(|e| unavailable("IORING_REGISTER_FILES", e))?;
        let rx = vec![0u8; cfg.recv_buffer].into_boxed_slice();
        let tx = vec![0u8; cfg.send_buffer].into_boxed_slice();
        let iov = [
            libc::iovec {
                iov_base: rx.as_ptr() as *mut libc::c_void,
                iov_len: rx.len(),
            },
            libc::iovec {
                iov_base: tx.as_ptr() as *mut libc::c_void,
                iov_len: tx.len(),
            },
        ];
        // SAFETY: both buffers are heap allocations owned by the transport being built; they stay
        // valid until the ring is dropped (the ring is the first field dropped, and `Drop` reaps
        // every in-flight operation before that).
        unsafe { ring.submitter().register_buffers(&iov) }
            .map_err(|e| unavailable("IORING_REGISTER_BUFFERS", e))?;

        let mut mode = RecvMode::SingleShot;
        let mut bufring = None;
        if cfg.multishot {
            match BufRing::register(&ring, cfg.ring_buffers, cfg.ring_buffer_size) {
                Ok(br) => {
                    bufring = Some(br);
                    mode = RecvMode::Multishot;
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "io_uring: provided-buffer rings unsupported (kernel < 5.19?); \
                     falling back to single-shot READ_FIXED receive"
                ),
            }
        } else {
            tracing::info!("io_uring: multishot receive disabled by configuration; single-shot");
        }
        Ok(UringTransport {
            ring,
            sock,
            addr: Box::new(SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)))),
            connected,
            mode,
            multishot_delivered: false,
            bufring,
            ready: VecDeque::with_capacity(cfg.ring_buffers as usize + 1),
            cur: None,
            recv_armed: false,
            rx,
            rx_off: 0,
            rx_len: 0,
            tx,
            tx_head: 0,
            tx_tail: 0,
            tx_inflight: 0,
            eof: false,
            error: None,
            inflight: 0,
            busy_poll,
            coop_taskrun,
        })
    }

    /// The receive mode in use (may switch to single-shot at the first receive if the kernel
    /// rejects multishot).
    pub fn recv_mode(&self) -> RecvMode {
        self.mode
    }

    /// Whether the ring runs with `COOP_TASKRUN | TASKRUN_FLAG`.
    pub fn coop_taskrun(&self) -> bool {
        self.coop_taskrun
    }

    /// What `SO_BUSY_POLL` ended up as on this socket.
    pub fn busy_poll_status(&self) -> BusyPollStatus {
        self.busy_poll
    }

    fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        // SAFETY: every entry we build points only at memory owned by `self` (registered buffers,
        // the provided-buffer ring, the boxed socket address), which outlives the operation.
        let r = unsafe { self.ring.submission().push(e) };
        if r.is_err() {
            // Queue full: submit what is there and retry once.
            self.ring.submit()?;
            // SAFETY: as above.
            unsafe { self.ring.submission().push(e) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.inflight += 1;
        Ok(())
    }

    /// Enter the kernel if there is something to submit or task work to run.
    fn submit(&mut self) -> io::Result<()> {
        let needed = {
            let sq = self.ring.submission();
            !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
        };
        if needed || !self.coop_taskrun {
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Process every available completion.
    fn reap(&mut self) {
        loop {
            let Some(cqe) = self.ring.completion().next() else {
                break;
            };
            self.on_completion(cqe.user_data(), cqe.result(), cqe.flags());
        }
    }

    fn on_completion(&mut self, ud: u64, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.inflight = self.inflight.saturating_sub(1);
        }
        match ud {
            UD_CONNECT => {
                if res < 0 {
                    self.error = Some(io::Error::from_raw_os_error(-res));
                } else {
                    self.connected = true;
                }
            }
            UD_RECV_MULTI => {
                if !more {
                    self.recv_armed = false;
                }
                let bid = cqueue::buffer_select(flags);
                if res > 0 {
                    self.multishot_delivered = true;
                    if let Some(bid) = bid {
                        self.ready.push_back((bid, res as u32));
                    }
                    return;
                }
                if let (Some(bid), Some(br)) = (bid, self.bufring.as_mut()) {
                    br.push(bid);
                    br.publish();
                }
                match res {
                    0 => self.eof = true,
                    e if -e == libc::ENOBUFS => {
                        // All provided buffers are queued for reading; re-armed once they are
                        // handed back.
                    }
                    e if -e == libc::EINVAL && !self.multishot_delivered => {
                        tracing::warn!(
                            "io_uring: multishot receive rejected (EINVAL, kernel < 6.0?); \
                             falling back to single-shot READ_FIXED receive"
                        );
                        self.mode = RecvMode::SingleShot;
                    }
                    e if -e == libc::ECANCELED => {}
                    e => self.error = Some(io::Error::from_raw_os_error(-e)),
                }
            }
            UD_RECV_FIXED => {
                self.recv_armed = false;
                match res {
                    n if n > 0 => {
                        self.rx_off = 0;
                        self.rx_len = n as usize;
                    }
                    0 => self.eof = true,
                    e if -e == libc::EAGAIN || -e == libc::EINTR || -e == libc::ECANCELED => {}
                    e => self.error = Some(io::Error::from_raw_os_error(-e)),
                }
            }
            UD_SEND => {
                let sent = self.tx_inflight;
                self.tx_inflight = 0;
                match res {
                    n if n >= 0 => {
                        let n = (n as usize).min(sent);
                        self.tx_head += n;
                        if self.tx_head == self.tx_tail {
                            self.tx_head = 0;
                            self.tx_tail = 0;
                        }
                    }
                    e if -e == libc::EAGAIN || -e == libc::EINTR || -e == libc::ECANCELED => {}
                    e => self.error = Some(io::Error::from_raw_os_error(-e)),
                }
            }
            _ => {}
        }
    }

    /// Arm the receive and the next send if needed, then submit.
    fn kick(&mut self) -> io::Result<()> {
        if self.connected && self.error.is_none() {
            if !self.recv_armed && !self.eof {
                match self.mode {
                    RecvMode::Multishot => {
                        if self.ready.is_empty() && self.cur.is_none() {
                            let e = opcode::RecvMulti::new(FIXED_FD, BUF_GROUP)
                                .build()
                                .user_data(UD_RECV_MULTI);
                            self.push(&e)?;
                            self.recv_armed = true;
                        }
                    }
                    RecvMode::SingleShot => {
                        if self.rx_off == self.rx_len {
                            let e = opcode::ReadFixed::new(
                                FIXED_FD,
                                self.rx.as_mut_ptr(),
                                self.rx.len() as u32,
                                RX_BUF_INDEX,
                            )
                            .build()
                            .user_data(UD_RECV_FIXED);
                            self.push(&e)?;
                            self.recv_armed = true;
                        }
                    }
                }
            }
            if self.tx_inflight == 0 && self.tx_head < self.tx_tail {
                let len = (self.tx_tail - self.tx_head).min(u32::MAX as usize);
                // SAFETY: `tx_head < tx_tail <= tx.len()`, so the pointer is inside the buffer.
                let ptr = unsafe { self.tx.as_ptr().add(self.tx_head) };
                let e = opcode::WriteFixed::new(FIXED_FD, ptr, len as u32, TX_BUF_INDEX)
                    .build()
                    .user_data(UD_SEND);
                self.push(&e)?;
                self.tx_inflight = len;
            }
        }
        self.submit()
    }

    fn has_data(&self) -> bool {
        match self.mode {
            RecvMode::Multishot => self.cur.is_some() || !self.ready.is_empty(),
            RecvMode::SingleShot => self.rx_off < self.rx_len,
        }
    }

    /// Copy buffered received bytes into `buf`.
    fn take_data(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        // Bytes left in the single-shot buffer are served first: after a fallback from
        // multishot, nothing is there; before one, nothing is in the provided buffers.
        if self.rx_off < self.rx_len {
            let k = (self.rx_len - self.rx_off).min(buf.len());
            buf[..k].copy_from_slice(&self.rx[self.rx_off..self.rx_off + k]);
            self.rx_off += k;
            n += k;
        }
        let Some(br) = self.bufring.as_mut() else {
            return n;
        };
        let mut recycled = false;
        while n < buf.len() {
            let (bid, off, len) = match self.cur.take() {
                Some(c) => c,
                None => match self.ready.pop_front() {
                    Some((bid, len)) => (bid, 0, len),
                    None => break,
                },
            };
            let src = &br.buf(bid)[off as usize..len as usize];
            let k = src.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&src[..k]);
            n += k;
            let off = off + k as u32;
            if off == len {
                br.push(bid);
                recycled = true;
            } else {
                self.cur = Some((bid, off, len));
            }
        }
        if recycled {
            br.publish();
        }
        n
    }

    /// Operations submitted whose final completion has not been reaped yet.
    pub fn inflight_ops(&self) -> u32 {
        self.inflight
    }

    /// Cancel every in-flight operation, shut the socket down and wait (at most about a second)
    /// for all completions. `true` when nothing is left in flight - the buffers can then be
    /// freed safely, which `Drop` relies on. The connection is unusable afterwards.
    pub fn quiesce(&mut self) -> bool {
        self.drain()
    }

    fn drain(&mut self) -> bool {
        self.reap();
        if self.inflight == 0 {
            return true;
        }
        let e = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(UD_CANCEL);
        if self.push(&e).is_err() {
            return false;
        }
        let _ = self.sock.shutdown(Shutdown::Both);
        for _ in 0..200 {
            let ts = Timespec::from(Duration::from_millis(5));
            let args = SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.reap();
            if self.inflight == 0 {
                return true;
            }
        }
        false
    }
}

impl Drop for UringTransport {
    fn drop(&mut self) {
        if !self.drain() {
            tracing::error!(
                inflight = self.inflight,
                "io_uring: operations still in flight at drop; leaking their buffers"
            );
            std::mem::forget(std::mem::take(&mut self.rx));
            std::mem::forget(std::mem::take(&mut self.tx));
            std::mem::forget(self.bufring.take());
        }
    }
}

impl Transport for UringTransport {
    fn driver(&self) -> DriverKind {
        DriverKind::IoUring
    }

    fn poll_connect(&mut self) -> io::Result<bool> {
        if !self.connected {
            self.reap();
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            self.kick()?;
            self.reap();
            if let Some(e) = self.error.take() {
                return Err(e);
            }
        }
        Ok(self.connected)
    }

    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        for _ in 0..2 {
            let n = self.take_data(buf);
            if n > 0 {
                return Ok(n);
            }
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            if self.eof {
                return Ok(0);
            }
            self.reap();
            if self.has_data() || self.eof || self.error.is_some() {
                continue;
            }
            self.kick()?;
            self.reap();
        }
        let n = self.take_data(buf);
        if n > 0 {
            return Ok(n);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !self.connected || buf.is_empty() {
            return if buf.is_empty() {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        if self.tx_tail == self.tx.len() {
            self.reap();
        }
        if self.tx_inflight == 0 && self.tx_head > 0 {
            self.tx.copy_within(self.tx_head..self.tx_tail, 0);
            self.tx_tail -= self.tx_head;
            self.tx_head = 0;
        }
        let n = (self.tx.len() - self.tx_tail).min(buf.len());
        if n == 0 {
            self.kick()?;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.tx[self.tx_tail..self.tx_tail + n].copy_from_slice(&buf[..n]);
        self.tx_tail += n;
        self.kick()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.reap();
        self.kick()?;
        self.reap();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.tx_head < self.tx_tail {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    }

    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        let check = |t: &Self| Readiness {
            readable: interest.readable() && (t.has_data() || t.eof || t.error.is_some()),
            writable: interest.writable()
                && ((t.connected && t.tx_tail < t.tx.len()) || t.error.is_some()),
        };
        self.reap();
        self.kick()?;
        self.reap();
        let r = check(self);
        if r.readable || r.writable || timeout == Some(Duration::ZERO) || self.inflight == 0 {
            return Ok(r);
        }
        let res = match timeout {
            Some(d) => {
                let ts = Timespec::from(d);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match res {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.reap();
        self.kick()?;
        self.reap();
        Ok(check(self))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .peer_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.sock.shutdown(Shutdown::Write)
    }
}

/// Check what `io_uring` features this machine offers: creates a ring, registers a
/// provided-buffer ring and runs a multishot receive over a local socket pair.
pub fn probe_io_uring() -> UringProbe {
    let mut p = UringProbe {
        available: false,
        unavailable_reason: None,
        coop_taskrun: false,
        buf_ring: false,
        multishot_recv: false,
    };
    let (ring, coop) = match build_ring(8, 16) {
        Ok(r) => r,
        Err(e) => {
            p.unavailable_reason = Some(e.to_string());
            return p;
        }
    };
    p.available = true;
    p.coop_taskrun = coop;
    let br = match BufRing::register(&ring, 4, 64) {
        Ok(b) => b,
        Err(_) => return p,
    };
    p.buf_ring = true;
    let (a, b) = match std::os::unix::net::UnixStream::pair() {
        Ok(x) => x,
        Err(_) => return p,
    };
    let mut ring = ring;
    let e = opcode::RecvMulti::new(io_uring::types::Fd(a.as_raw_fd()), BUF_GROUP)
        .build()
        .user_data(UD_RECV_MULTI);
    // SAFETY: the operation uses only the provided-buffer ring `br`, which outlives it: the
    // socket pair is shut down and the operation reaped (or the memory leaked) below.
    if unsafe { ring.submission().push(&e) }.is_err() || ring.submit().is_err() {
        return p;
    }
    use std::io::Write;
    let _ = (&b).write_all(b"x");
    let ts = Timespec::from(Duration::from_millis(200));
    let args = SubmitArgs::new().timespec(&ts);
    let _ = ring.submitter().submit_with_args(1, &args);
    let mut done = false;
    if let Some(cqe) = ring.completion().next() {
        p.multishot_recv = cqe.result() == 1 && cqueue::more(cqe.flags());
        done = !cqueue::more(cqe.flags());
    }
    if !done {
        let _ = a.shutdown(Shutdown::Both);
        for _ in 0..40 {
            let _ = ring.submitter().submit_with_args(1, &args);
            while let Some(cqe) = ring.completion().next() {
                if !cqueue::more(cqe.flags()) {
                    done = true;
                }
            }
            if done {
                break;
            }
        }
    }
    if !done {
        std::mem::forget(br);
    }
    p
}
