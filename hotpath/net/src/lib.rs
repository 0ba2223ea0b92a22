//! Hot-path networking of algo-engine: socket drivers, TLS, RFC 6455 WebSocket, OpenOnload
//! detection and reconnect policy. Venue-agnostic: the venue codecs sit on top.
//!
//! How the pieces fit: a stage (feed or gateway) opens a connection with
//! [`socket::connect`], whose driver - [`socket::MioTransport`] (busy-polled non-blocking
//! sockets), [`socket::UringTransport`] (`io_uring`) or [`socket::StdTransport`] (blocking
//! baseline) - comes from configuration after [`onload::choose_driver`] has had its say (it
//! forces mio when OpenOnload is present, because `io_uring` bypasses Onload). For `wss://` the
//! connection is wrapped in [`socket::TlsTransport`]. Everything implements
//! [`socket::Transport`], over which [`ws::WsClient`] runs the WebSocket protocol: it decodes
//! frames in place in its receive buffer and hands out messages as borrowed slices, answers
//! pings, and completes the close handshake. The stage drives it with `poll()` from its pinned
//! thread and uses [`reconnect::Reconnector`] (backoff + liveness, on caller-supplied timestamps)
//! to decide when to tear down and re-establish the connection.
//!
//! No async runtime, no locks; all buffers are allocated when a connection is created, and the
//! WebSocket receive path makes no allocation per message, over TLS too: after the `rustls`
//! handshake, [`socket::TlsTransport`] runs the record layer in place in fixed buffers (only
//! session tickets and key updates, a few per connection, allocate).

#![warn(missing_docs)]

pub mod onload;
pub mod reconnect;
pub mod socket;
pub mod ws;

pub use socket::{connect, AnyTransport, DriverKind, NetError, SocketConfig, Transport};
pub use ws::{Message, WsClient, WsConfig, WsError};
