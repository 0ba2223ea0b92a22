//! RFC 6455 WebSocket, client side, plus the minimal server-side helpers the venue simulator
//! and the tests need.
//!
//! Venues push market data and order updates over WebSockets, so this is on the hot path: frames
//! are decoded in place in the receive buffer (no copy for single-frame messages), masking keys
//! come from an inline generator, and every buffer is allocated when the connection is created.
//! General-purpose crates (`tungstenite`...) allocate a `Vec` per message, which the hot-path rule
//! "no allocation after warm-up" forbids; hence this implementation.
//!
//! * [`frame`]: header parsing, in-place decoding, reassembly, encoding, masking.
//! * [`handshake`]: the HTTP upgrade for both sides.
//! * [`WsClient`]: the client state machine over any [`Transport`](crate::socket::Transport).

mod client;
mod error;
pub mod frame;
pub mod handshake;

pub use client::{CloseFrame, Message, WsClient, WsConfig, WsState};
pub use error::{CloseCode, HandshakeError, WsError};
pub use frame::{
    apply_mask, encode_frame, Decoded, Frame, FrameDecoder, FrameEncoder, OpCode, Push,
    Reassembler, Role,
};
pub use handshake::{accept_key, parse_client_request, write_server_response, ClientHandshake};

#[cfg(test)]
mod tests;
