//! Socket creation and the latency options every driver applies.
//!
//! `SO_BUSY_POLL` has no `socket2` wrapper, so it goes through `libc::setsockopt`. The kernel
//! refuses to raise it above the current value without `CAP_NET_ADMIN`; that is reported in
//! [`BusyPollStatus`] and logged, never fatal, because the engine must still run unprivileged.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::SocketConfig;

/// Outcome of applying `SO_BUSY_POLL` to a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyPollStatus {
    /// Not requested.
    NotRequested,
    /// Set: the kernel busy-polls the device queue for up to this many microseconds on reads.
    Enabled {
        /// Value read back from the socket.
        usecs: u32,
    },
    /// `EPERM`: raising the value needs `CAP_NET_ADMIN`.
    PermissionDenied,
    /// Another error (e.g. `ENOPROTOOPT` on a kernel without `CONFIG_NET_RX_BUSY_POLL`).
    Failed {
        /// The errno.
        errno: i32,
    },
}

/// Set `SO_BUSY_POLL` on `sock` and read it back.
pub(crate) fn set_busy_poll(sock: &Socket, usecs: u32) -> BusyPollStatus {
    let fd = sock.as_raw_fd();
    let val: libc::c_int = usecs.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `fd` is a valid open socket owned by `sock` for the duration of the call; the option
    // value points to a live `c_int` and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        let errno = err.raw_os_error().unwrap_or(0);
        return if errno == libc::EPERM {
            tracing::warn!(
                usecs,
                "SO_BUSY_POLL needs CAP_NET_ADMIN to be raised; continuing without it"
            );
            BusyPollStatus::PermissionDenied
        } else {
            tracing::warn!(usecs, %err, "SO_BUSY_POLL could not be set; continuing without it");
            BusyPollStatus::Failed { errno }
        };
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as above; `got` and `len` are live locals the kernel writes into.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return BusyPollStatus::Enabled { usecs };
    }
    BusyPollStatus::Enabled { usecs: got as u32 }
}

/// A TCP socket for `addr` with the configured options applied (not yet connected), plus the
/// busy-poll outcome.
pub(crate) fn new_tcp_socket(
    addr: &SocketAddr,
    cfg: &SocketConfig,
) -> io::Result<(Socket, BusyPollStatus)> {
    let sock = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    let busy = apply_options(&sock, cfg)?;
    Ok((sock, busy))
}

/// Apply `TCP_NODELAY`, buffer sizes and `SO_BUSY_POLL` to an existing socket (also used for
/// accepted sockets).
pub(crate) fn apply_options(sock: &Socket, cfg: &SocketConfig) -> io::Result<BusyPollStatus> {
    if cfg.nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    if let Some(n) = cfg.recv_buffer {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(n) = cfg.send_buffer {
        sock.set_send_buffer_size(n)?;
    }
    Ok(match cfg.busy_poll_us {
        Some(us) => set_busy_poll(sock, us),
        None => BusyPollStatus::NotRequested,
    })
}

/// Start a non-blocking connect: `EINPROGRESS` is the expected outcome, not an error.
pub(crate) fn start_connect(sock: &Socket, addr: &SocketAddr) -> io::Result<()> {
    sock.set_nonblocking(true)?;
    match sock.connect(&SockAddr::from(*addr)) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Non-blocking connect progress for a socket: `Ok(true)` once connected.
pub(crate) fn connect_progress(sock: &impl AsRawFd) -> io::Result<bool> {
    let fd = sock.as_raw_fd();
    // SAFETY: `storage`/`len` are live locals sized for any socket address; `fd` is open.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: see above.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOTCONN) {
        return Err(err);
    }
    let mut so_err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `so_err`/`len` are live locals; `fd` is open.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut so_err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if so_err != 0 {
        return Err(io::Error::from_raw_os_error(so_err));
    }
    Ok(false)
}

/// `poll(2)` on one descriptor; returns (readable, writable).
pub(crate) fn poll_fd(
    fd: i32,
    read: bool,
    write: bool,
    timeout: Option<std::time::Duration>,
) -> io::Result<(bool, bool)> {
    let mut events = 0;
    if read {
        events |= libc::POLLIN;
    }
    if write {
        events |= libc::POLLOUT;
    }
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = match timeout {
        None => -1,
        Some(d) => d.as_millis().min(i32::MAX as u128) as i32,
    };
    // SAFETY: `pfd` is a live pollfd and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok((false, false));
        }
        return Err(e);
    }
    let r = pfd.revents;
    let err = r & (libc::POLLERR | libc::POLLHUP) != 0;
    Ok((
        r & libc::POLLIN != 0 || (read && err),
        r & libc::POLLOUT != 0 || (write && err),
    ))
}
