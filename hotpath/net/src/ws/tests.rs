//! Unit and property tests of the WebSocket layer: RFC 6455 examples byte for byte, round trips
//! for every length class, every malformed case, and the client state machine over an in-memory
//! transport.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;

use super::frame::*;
use super::handshake::*;
use super::*;
use crate::socket::{DriverKind, Interest, Readiness, Transport};

const RFC_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn decode_one(role: Role, max: usize, bytes: &[u8]) -> Result<(Frame, Vec<u8>), WsError> {
    let mut buf = bytes.to_vec();
    match FrameDecoder::new(role, max).decode(&mut buf)? {
        Decoded::Frame(f) => {
            let p = buf[f.payload.clone()].to_vec();
            Ok((f, p))
        }
        Decoded::NeedMore { total } => panic!("incomplete frame, need {total}"),
    }
}

// ---- RFC 6455 section 5.7 examples ----

#[test]
fn rfc_single_frame_unmasked_text() {
    let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let mut out = [0u8; 16];
    let n = encode_frame(true, OpCode::Text, None, b"Hello", &mut out).unwrap();
    assert_eq!(&out[..n], &wire);
    let (f, p) = decode_one(Role::Client, 1024, &wire).unwrap();
    assert!(f.fin);
    assert_eq!(f.opcode, OpCode::Text);
    assert_eq!(p, b"Hello");
    assert_eq!(f.consumed, 7);
}

#[test]
fn rfc_single_frame_masked_text() {
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut out = [0u8; 16];
    let n = encode_frame(true, OpCode::Text, Some(RFC_MASK), b"Hello", &mut out).unwrap();
    assert_eq!(&out[..n], &wire);
    let (f, p) = decode_one(Role::Server, 1024, &wire).unwrap();
    assert_eq!(f.opcode, OpCode::Text);
    assert_eq!(p, b"Hello");
    assert_eq!(f.payload, 6..11);
}

#[test]
fn rfc_fragmented_unmasked_text() {
    let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
    let second = [0x80, 0x02, 0x6c, 0x6f];
    let mut out = [0u8; 8];
    let n = encode_frame(false, OpCode::Text, None, b"Hel", &mut out).unwrap();
    assert_eq!(&out[..n], &first);
    let n = encode_frame(true, OpCode::Continuation, None, b"lo", &mut out).unwrap();
    assert_eq!(&out[..n], &second);

    let mut wire = first.to_vec();
    wire.extend_from_slice(&second);
    let dec = FrameDecoder::new(Role::Client, 1024);
    let mut r = Reassembler::new(1024, true);
    let Decoded::Frame(f1) = dec.decode(&mut wire).unwrap() else {
        panic!()
    };
    assert!(!f1.fin);
    assert_eq!(
        r.push(f1.fin, f1.opcode, &wire[f1.payload.clone()])
            .unwrap(),
        Push::Fragment
    );
    let rest = &mut wire[f1.consumed..];
    let Decoded::Frame(f2) = dec.decode(rest).unwrap() else {
        panic!()
    };
    assert_eq!(f2.opcode, OpCode::Continuation);
    assert_eq!(
        r.push(f2.fin, f2.opcode, &rest[f2.payload.clone()])
            .unwrap(),
        Push::Complete(OpCode::Text)
    );
    assert_eq!(r.message(), b"Hello");
}

#[test]
fn rfc_ping_and_masked_pong() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut out = [0u8; 16];
    let n = encode_frame(true, OpCode::Ping, None, b"Hello", &mut out).unwrap();
    assert_eq!(&out[..n], &ping);
    let n = encode_frame(true, OpCode::Pong, Some(RFC_MASK), b"Hello", &mut out).unwrap();
    assert_eq!(&out[..n], &pong);
    let (f, p) = decode_one(Role::Client, 1024, &ping).unwrap();
    assert_eq!((f.opcode, p.as_slice()), (OpCode::Ping, &b"Hello"[..]));
    let (f, p) = decode_one(Role::Server, 1024, &pong).unwrap();
    assert_eq!((f.opcode, p.as_slice()), (OpCode::Pong, &b"Hello"[..]));
}

#[test]
fn rfc_256_byte_and_64k_binary_headers() {
    let payload = vec![0xabu8; 256];
    let mut out = vec![0u8; 300];
    let n = encode_frame(true, OpCode::Binary, None, &payload, &mut out).unwrap();
    assert_eq!(&out[..4], &[0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(n, 260);
    let (f, p) = decode_one(Role::Client, 1 << 20, &out[..n]).unwrap();
    assert_eq!((f.opcode, p), (OpCode::Binary, payload));

    let payload = vec![0x5au8; 65536];
    let mut out = vec![0u8; 65546];
    let n = encode_frame(true, OpCode::Binary, None, &payload, &mut out).unwrap();
    assert_eq!(
        &out[..10],
        &[0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
    );
    assert_eq!(n, 65546);
    let (f, p) = decode_one(Role::Client, 1 << 20, &out[..n]).unwrap();
    assert_eq!((f.opcode, p), (OpCode::Binary, payload));
}

#[test]
fn rfc_handshake_example() {
    assert_eq!(
        &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let hs = ClientHandshake::with_key_bytes(*b"the sample nonce");
    assert_eq!(hs.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(&hs.expected_accept(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\
                 \x81\x05Hello";
    let n = hs.parse_response(resp).unwrap().unwrap();
    assert_eq!(&resp[n..], b"\x81\x05Hello");
}

// ---- handshake ----

#[test]
fn client_request_and_server_response_interoperate() {
    let hs = ClientHandshake::new();
    assert_eq!(hs.key().len(), 24);
    assert_ne!(hs.key(), ClientHandshake::new().key(), "keys are random");
    let mut buf = [0u8; 512];
    let n = hs
        .write_request(
            "stream.example.com:9443",
            "/ws/btcusdt@trade",
            &[("X-Api-Key", "abc")],
            &mut buf,
        )
        .unwrap();
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(text.starts_with("GET /ws/btcusdt@trade HTTP/1.1\r\n"));
    assert!(text.contains("Host: stream.example.com:9443\r\n"));
    assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    assert!(text.contains("X-Api-Key: abc\r\n"));
    assert!(text.ends_with("\r\n\r\n"));

    let req = parse_client_request(&buf[..n]).unwrap().unwrap();
    assert_eq!(req.path, "/ws/btcusdt@trade");
    assert_eq!(req.key, hs.key());
    assert_eq!(req.consumed, n);
    assert_eq!(parse_client_request(&buf[..n - 1]).unwrap(), None);

    let mut resp = [0u8; 256];
    let m = write_server_response(req.key, &mut resp).unwrap();
    assert_eq!(hs.parse_response(&resp[..m]).unwrap(), Some(m));
    assert_eq!(hs.parse_response(&resp[..m - 2]).unwrap(), None);

    match hs.write_request("h", "/", &[], &mut [0u8; 10]) {
        Err(WsError::BufferTooSmall { need, have: 10 }) => assert!(need > 100),
        r => panic!("{r:?}"),
    }
}

#[test]
fn handshake_rejections() {
    let hs = ClientHandshake::with_key_bytes(*b"the sample nonce");
    let ok_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    let resp = |status: &str, upgrade: &str, conn: &str, accept: &str, extra: &str| {
        format!(
            "HTTP/1.1 {status}\r\nUpgrade: {upgrade}\r\nConnection: {conn}\r\n\
             Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
        )
    };
    let p = |s: String| hs.parse_response(s.as_bytes());
    assert_eq!(
        p(resp(
            "101 OK",
            "WebSocket",
            "keep-alive, Upgrade",
            ok_accept,
            ""
        )),
        Ok(Some(
            resp("101 OK", "WebSocket", "keep-alive, Upgrade", ok_accept, "").len()
        ))
    );
    assert_eq!(
        p(resp("200 OK", "websocket", "Upgrade", ok_accept, "")),
        Err(HandshakeError::Status(200))
    );
    assert_eq!(
        p(resp("101 X", "h2c", "Upgrade", ok_accept, "")),
        Err(HandshakeError::Header("Upgrade"))
    );
    assert_eq!(
        p(resp("101 X", "websocket", "close", ok_accept, "")),
        Err(HandshakeError::Header("Connection"))
    );
    assert_eq!(
        p(resp(
            "101 X",
            "websocket",
            "Upgrade",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ""
        )),
        Err(HandshakeError::AcceptMismatch)
    );
    assert_eq!(
        p(resp(
            "101 X",
            "websocket",
            "Upgrade",
            ok_accept,
            "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        )),
        Err(HandshakeError::NotOffered("Sec-WebSocket-Extensions"))
    );
    assert!(matches!(
        hs.parse_response(b"garbage\r\n\r\n"),
        Err(HandshakeError::Http(_))
    ));
    assert_eq!(
        parse_client_request(b"POST / HTTP/1.1\r\n\r\n"),
        Err(HandshakeError::NotUpgrade("method is not GET"))
    );
}

// ---- round trips ----

fn round_trip(len: usize, role_tx: Role) {
    let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    let mut enc = FrameEncoder::with_seed(role_tx, len as u64);
    let mut out = vec![0u8; enc.frame_len(len)];
    let n = enc
        .encode(true, OpCode::Binary, &payload, &mut out)
        .unwrap();
    assert_eq!(n, out.len());
    assert_eq!(n, header_len(len, role_tx == Role::Client) + len);
    let masked = out[1] & 0x80 != 0;
    assert_eq!(masked, role_tx == Role::Client);
    if masked && len >= 8 {
        assert_ne!(
            &out[n - len..],
            &payload[..],
            "payload must be masked on the wire"
        );
    }
    let rx_role = match role_tx {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    // Every proper prefix is incomplete (and never an error).
    for cut in [0, 1, 2, 3, 9, 13, n - 1] {
        if cut < n {
            let mut b = out[..cut].to_vec();
            match FrameDecoder::new(rx_role, 2 << 20).decode(&mut b).unwrap() {
                Decoded::NeedMore { total } => assert!(total > cut && total <= n),
                Decoded::Frame(_) => panic!("prefix of {cut}/{n} decoded as a frame"),
            }
        }
    }
    let (f, p) = decode_one(rx_role, 2 << 20, &out).unwrap();
    assert_eq!(f.consumed, n);
    assert!(p == payload, "payload mismatch at len {len}");
}

#[test]
fn round_trip_all_length_classes_both_roles() {
    for len in [
        0,
        1,
        7,
        8,
        9,
        125,
        126,
        127,
        65535,
        65536,
        65537,
        (1 << 20) - 3,
    ] {
        round_trip(len, Role::Client);
        round_trip(len, Role::Server);
    }
}

#[test]
fn minimal_length_encoding() {
    assert_eq!(header_len(125, false), 2);
    assert_eq!(header_len(126, false), 4);
    assert_eq!(header_len(65535, false), 4);
    assert_eq!(header_len(65536, false), 10);
    assert_eq!(header_len(0, true), 6);
    let mut out = vec![0u8; 70000];
    encode_frame(true, OpCode::Binary, None, &[0; 125], &mut out).unwrap();
    assert_eq!(out[1], 125);
    encode_frame(true, OpCode::Binary, None, &[0; 126], &mut out).unwrap();
    assert_eq!(&out[1..4], &[126, 0, 126]);
    encode_frame(true, OpCode::Binary, None, &[0; 65535], &mut out).unwrap();
    assert_eq!(&out[1..4], &[126, 0xff, 0xff]);
}

#[test]
fn client_masks_differ_per_frame_and_seeded_is_deterministic() {
    let mut a = FrameEncoder::with_seed(Role::Client, 5);
    let mut b = FrameEncoder::with_seed(Role::Client, 5);
    let ka: Vec<_> = (0..64).map(|_| a.next_mask().unwrap()).collect();
    let kb: Vec<_> = (0..64).map(|_| b.next_mask().unwrap()).collect();
    assert_eq!(ka, kb);
    let distinct: std::collections::HashSet<_> = ka.iter().collect();
    assert!(distinct.len() > 60);
    assert_eq!(FrameEncoder::new(Role::Server).next_mask(), None);
}

#[test]
fn apply_mask_matches_bytewise_definition_at_every_length() {
    let mask = [1u8, 0x80, 0x33, 0xfe];
    for len in 0..40 {
        let orig: Vec<u8> = (0..len as u8).collect();
        let mut fast = orig.clone();
        apply_mask(&mut fast, mask);
        let slow: Vec<u8> = orig
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, slow, "len {len}");
    }
}

// ---- malformed input ----

fn err_of(role: Role, max: usize, bytes: &[u8]) -> WsError {
    let mut b = bytes.to_vec();
    match FrameDecoder::new(role, max).decode(&mut b) {
        Err(e) => e,
        Ok(d) => panic!("expected an error, got {d:?}"),
    }
}

#[test]
fn malformed_frames_give_the_right_error_and_close_code() {
    let c = Role::Client;
    let pe = Some(CloseCode::PROTOCOL_ERROR);
    for rsv in [0x40u8, 0x20, 0x10, 0x70] {
        let e = err_of(c, 100, &[0x81 | rsv, 0x00]);
        assert!(
            matches!(e, WsError::ReservedBits(b) if b == rsv >> 4),
            "{e:?}"
        );
        assert_eq!(e.close_code(), pe);
    }
    for op in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let e = err_of(c, 100, &[0x80 | op, 0x00]);
        assert!(matches!(e, WsError::ReservedOpcode(o) if o == op), "{e:?}");
        assert_eq!(e.close_code(), pe);
    }
    for op in [0x8u8, 0x9, 0xA] {
        let e = err_of(c, 100, &[op, 0x00]);
        assert!(
            matches!(e, WsError::FragmentedControl(o) if o == op),
            "{e:?}"
        );
        assert_eq!(e.close_code(), pe);
    }
    let e = err_of(c, 1000, &[0x89, 126, 0, 126]);
    assert!(matches!(e, WsError::ControlTooLarge(126)), "{e:?}");
    assert_eq!(e.close_code(), pe);
    let e = err_of(c, 1000, &[0x88, 127, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert!(matches!(e, WsError::ControlTooLarge(256)), "{e:?}");

    // Oversize: reported from the header alone, before the payload arrives.
    let e = err_of(c, 1000, &[0x82, 126, 0x03, 0xE9]);
    assert!(
        matches!(
            e,
            WsError::FrameTooLarge {
                len: 1001,
                max: 1000
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    assert_eq!(
        e.to_string(),
        "frame payload of 1001 bytes exceeds the maximum of 1000"
    );
    let e = err_of(c, 1 << 20, &[0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert!(matches!(e, WsError::FrameTooLarge { len, .. } if len == 1 << 32));
    let e = err_of(c, 1 << 20, &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]);
    assert!(matches!(e, WsError::LengthOverflow), "{e:?}");

    // Masking rules.
    let e = err_of(Role::Client, 100, &[0x81, 0x81, 1, 2, 3, 4, 5]);
    assert!(matches!(e, WsError::MaskedFrame));
    assert_eq!(e.close_code(), pe);
    let e = err_of(Role::Server, 100, &[0x81, 0x01, b'a']);
    assert!(matches!(e, WsError::UnmaskedFrame));
}

#[test]
fn truncated_headers_need_more_with_the_right_total() {
    let dec = FrameDecoder::new(Role::Client, 1 << 20);
    let cases: &[(&[u8], usize)] = &[
        (&[], 2),
        (&[0x81], 2),
        (&[0x82, 126], 4),
        (&[0x82, 126, 0x01], 4),
        (&[0x82, 126, 0x01, 0x00], 4 + 256),
        (&[0x82, 127, 0, 0, 0], 10),
        (&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0], 10 + 65536),
        (&[0x81, 5, b'H'], 7),
    ];
    for (bytes, total) in cases {
        let mut b = bytes.to_vec();
        assert_eq!(
            dec.decode(&mut b).unwrap(),
            Decoded::NeedMore { total: *total },
            "{bytes:?}"
        );
    }
    let server = FrameDecoder::new(Role::Server, 100);
    let mut b = vec![0x81, 0x85, 1, 2];
    assert_eq!(
        server.decode(&mut b).unwrap(),
        Decoded::NeedMore { total: 6 }
    );
}

#[test]
fn reassembly_errors() {
    let mut r = Reassembler::new(10, true);
    let e = r.push(true, OpCode::Continuation, b"x").unwrap_err();
    assert!(matches!(e, WsError::UnexpectedContinuation));
    assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));

    assert_eq!(r.push(false, OpCode::Text, b"abc").unwrap(), Push::Fragment);
    let e = r.push(true, OpCode::Binary, b"x").unwrap_err();
    assert!(matches!(e, WsError::ExpectedContinuation));

    let mut r = Reassembler::new(10, true);
    assert_eq!(
        r.push(false, OpCode::Binary, b"0123456").unwrap(),
        Push::Fragment
    );
    let e = r.push(true, OpCode::Continuation, b"7890").unwrap_err();
    assert!(matches!(e, WsError::MessageTooLarge { len: 11, max: 10 }));
    assert_eq!(e.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    let e = r.push(true, OpCode::Binary, &[0; 11]).unwrap_err();
    assert!(matches!(e, WsError::MessageTooLarge { len: 11, max: 10 }));

    let mut r = Reassembler::new(10, true);
    let e = r.push(true, OpCode::Text, &[0xff, 0xfe]).unwrap_err();
    assert!(matches!(e, WsError::InvalidUtf8));
    assert_eq!(e.close_code(), Some(CloseCode::INVALID_PAYLOAD));
    // A UTF-8 sequence split across fragments is fine; an invalid one is not.
    let euro = "€".as_bytes();
    assert_eq!(
        r.push(false, OpCode::Text, &euro[..1]).unwrap(),
        Push::Fragment
    );
    assert_eq!(
        r.push(true, OpCode::Continuation, &euro[1..]).unwrap(),
        Push::Complete(OpCode::Text)
    );
    assert_eq!(r.message(), euro);
    assert_eq!(
        r.push(false, OpCode::Text, &euro[..1]).unwrap(),
        Push::Fragment
    );
    assert!(matches!(
        r.push(true, OpCode::Continuation, b"x"),
        Err(WsError::InvalidUtf8)
    ));
    // Control frames interleave without disturbing the message in progress.
    assert_eq!(
        r.push(false, OpCode::Binary, b"ab").unwrap(),
        Push::Fragment
    );
    assert_eq!(
        r.push(true, OpCode::Ping, b"p").unwrap(),
        Push::Control(OpCode::Ping)
    );
    assert_eq!(
        r.push(true, OpCode::Continuation, b"cd").unwrap(),
        Push::Complete(OpCode::Binary)
    );
    assert_eq!(r.message(), b"abcd");
}

#[test]
fn close_payload_validation() {
    assert_eq!(parse_close_payload(&[]).unwrap(), None);
    assert!(matches!(
        parse_close_payload(&[3]),
        Err(WsError::InvalidClosePayload)
    ));
    assert_eq!(
        parse_close_payload(b"\x03\xe8bye").unwrap(),
        Some((CloseCode::NORMAL, "bye"))
    );
    for bad in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        let p = bad.to_be_bytes();
        let e = parse_close_payload(&p).unwrap_err();
        assert!(
            matches!(e, WsError::InvalidCloseCode(c) if c == bad),
            "{bad}"
        );
        assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
    }
    for good in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
    ] {
        assert!(parse_close_payload(&good.to_be_bytes()).is_ok(), "{good}");
    }
    assert!(matches!(
        parse_close_payload(b"\x03\xe8\xff"),
        Err(WsError::InvalidUtf8)
    ));
    let mut enc = FrameEncoder::with_seed(Role::Server, 1);
    let mut out = [0u8; 200];
    let n = enc
        .encode_close(Some((CloseCode(4001), "going")), &mut out)
        .unwrap();
    assert_eq!(&out[..n], b"\x88\x07\x0f\xa1going");
    let long = "x".repeat(124);
    assert!(matches!(
        enc.encode_close(Some((CloseCode::NORMAL, &long)), &mut out),
        Err(WsError::ControlTooLarge(126))
    ));
    assert!(matches!(
        encode_frame(false, OpCode::Ping, None, b"", &mut out),
        Err(WsError::FragmentedControl(9))
    ));
    assert!(matches!(
        encode_frame(true, OpCode::Ping, None, &[0; 10], &mut [0u8; 5]),
        Err(WsError::BufferTooSmall { need: 12, have: 5 })
    ));
}

// ---- property tests ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any sequence of frames, encoded and fed to the decoder in arbitrary chunks, decodes to the
    /// same frames.
    #[test]
    fn prop_stream_round_trip(
        msgs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..70_000), any::<bool>()), 1..6),
        chunk in 1usize..5000,
        seed in any::<u64>(),
    ) {
        let mut enc = FrameEncoder::with_seed(Role::Client, seed);
        let mut wire = Vec::new();
        for (p, _) in &msgs {
            let mut out = vec![0u8; enc.frame_len(p.len())];
            enc.encode(true, OpCode::Binary, p, &mut out).unwrap();
            wire.extend_from_slice(&out);
        }
        let dec = FrameDecoder::new(Role::Server, 1 << 20);
        let mut buf: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        let mut fed = 0;
        while got.len() < msgs.len() {
            match dec.decode(&mut buf).unwrap() {
                Decoded::Frame(f) => {
                    got.push(buf[f.payload.clone()].to_vec());
                    buf.drain(..f.consumed);
                }
                Decoded::NeedMore { total } => {
                    prop_assert!(total > buf.len());
                    prop_assert!(fed < wire.len(), "decoder wants more than was sent");
                    let end = (fed + chunk).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
        prop_assert!(buf.is_empty());
        for (g, (p, _)) in got.iter().zip(&msgs) {
            prop_assert_eq!(g, p);
        }
    }

    /// A message split into random fragments with pings interleaved reassembles intact.
    #[test]
    fn prop_fragmented_with_interleaved_pings(
        msg in proptest::collection::vec(any::<u8>(), 0..20_000),
        cuts in proptest::collection::vec(any::<u16>(), 0..8),
        pings in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|c| *c as usize % (msg.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut wire = Vec::new();
        let mut start = 0;
        let mut frags: Vec<&[u8]> = Vec::new();
        for p in points.iter().chain(std::iter::once(&msg.len())) {
            frags.push(&msg[start..*p.max(&start)]);
            start = *p.max(&start);
        }
        let mut out = vec![0u8; 20_100];
        for (i, f) in frags.iter().enumerate() {
            let op = if i == 0 { OpCode::Binary } else { OpCode::Continuation };
            let n = encode_frame(i + 1 == frags.len(), op, None, f, &mut out).unwrap();
            wire.extend_from_slice(&out[..n]);
            if pings[i % pings.len()] {
                let n = encode_frame(true, OpCode::Ping, None, b"hb", &mut out).unwrap();
                wire.extend_from_slice(&out[..n]);
            }
        }
        let dec = FrameDecoder::new(Role::Client, 1 << 20);
        let mut r = Reassembler::new(20_000, true);
        let mut pos = 0;
        let mut done = false;
        let mut seen_pings = 0;
        while pos < wire.len() {
            let Decoded::Frame(f) = dec.decode(&mut wire[pos..]).unwrap() else {
                panic!("complete stream decodes fully")
            };
            let payload = &wire[pos + f.payload.start..pos + f.payload.end];
            match r.push(f.fin, f.opcode, payload).unwrap() {
                Push::Control(OpCode::Ping) => seen_pings += 1,
                Push::Fragment => {}
                Push::Single(_) | Push::Complete(_) => {
                    let m = if f.opcode == OpCode::Continuation { r.message() } else { payload };
                    prop_assert_eq!(m, &msg[..]);
                    done = true;
                }
                p => panic!("unexpected {p:?}"),
            }
            pos += f.consumed;
        }
        prop_assert!(done);
        let expected_pings = (0..frags.len()).filter(|i| pings[i % pings.len()]).count();
        prop_assert_eq!(seen_pings, expected_pings);
    }

    /// Arbitrary bytes never panic the decoder or reassembler, and errors always carry a code.
    #[test]
    fn prop_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for role in [Role::Client, Role::Server] {
            let dec = FrameDecoder::new(role, 100);
            let mut r = Reassembler::new(100, true);
            let mut b = bytes.clone();
            let mut pos = 0;
            loop {
                match dec.decode(&mut b[pos..]) {
                    Ok(Decoded::Frame(f)) => {
                        let p = b[pos + f.payload.start..pos + f.payload.end].to_vec();
                        match r.push(f.fin, f.opcode, &p) {
                            Ok(Push::Control(OpCode::Close)) => {
                                let _ = parse_close_payload(&p);
                            }
                            Ok(_) => {}
                            Err(e) => { prop_assert!(e.close_code().is_some()); break; }
                        }
                        pos += f.consumed;
                    }
                    Ok(Decoded::NeedMore { total }) => {
                        prop_assert!(total > b.len() - pos);
                        break;
                    }
                    Err(e) => { prop_assert!(e.close_code().is_some()); break; }
                }
            }
        }
    }
}

// ---- WsClient over an in-memory transport ----

/// In-memory transport: `input` is what the "server" sent, delivered at most `chunk` bytes per
/// read; everything written lands in `output`.
struct Mem {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    output: Vec<u8>,
    eof: bool,
}

impl Mem {
    fn new(chunk: usize) -> Self {
        Mem {
            input: Vec::new(),
            pos: 0,
            chunk,
            output: Vec::new(),
            eof: false,
        }
    }
}

impl Transport for Mem {
    fn driver(&self) -> DriverKind {
        DriverKind::Std
    }
    fn poll_connect(&mut self) -> io::Result<bool> {
        Ok(true)
    }
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.input.len() - self.pos;
        if avail == 0 {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = avail.min(buf.len()).min(self.chunk);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn poll(&mut self, _: Interest, _: Option<Duration>) -> io::Result<Readiness> {
        Ok(Readiness {
            readable: true,
            writable: true,
        })
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(([127, 0, 0, 1], 1).into())
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(([127, 0, 0, 1], 2).into())
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A client whose handshake has completed against the in-memory "server".
fn open_client(chunk: usize, cfg: &WsConfig) -> WsClient<Mem> {
    let mut c = WsClient::new(Mem::new(chunk), "localhost", "/feed", cfg).unwrap();
    assert!(c.poll().unwrap().is_none());
    assert_eq!(c.state(), WsState::Handshaking);
    let req = parse_client_request(&c.transport().output)
        .unwrap()
        .unwrap();
    let key = req.key.to_string();
    let mut resp = [0u8; 256];
    let n = write_server_response(&key, &mut resp).unwrap();
    let m = c.transport_mut();
    m.output.clear();
    m.input.extend_from_slice(&resp[..n]);
    assert!(c.poll().unwrap().is_none());
    assert_eq!(c.state(), WsState::Open);
    c
}

fn server_frame(c: &mut WsClient<Mem>, fin: bool, op: OpCode, payload: &[u8]) {
    let mut out = vec![0u8; payload.len() + 14];
    let n = encode_frame(fin, op, None, payload, &mut out).unwrap();
    c.transport_mut().input.extend_from_slice(&out[..n]);
}

/// Decode what the client wrote (masked frames) as a server would.
fn client_frames(c: &mut WsClient<Mem>) -> Vec<(OpCode, Vec<u8>)> {
    let mut out = std::mem::take(&mut c.transport_mut().output);
    let dec = FrameDecoder::new(Role::Server, 1 << 20);
    let mut pos = 0;
    let mut v = Vec::new();
    while pos < out.len() {
        let Decoded::Frame(f) = dec.decode(&mut out[pos..]).unwrap() else {
            panic!("partial client frame")
        };
        v.push((
            f.opcode,
            out[pos + f.payload.start..pos + f.payload.end].to_vec(),
        ));
        pos += f.consumed;
    }
    v
}

fn summary(m: &Message<'_>) -> String {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match m {
        Message::Text(s) => format!("text {} {}", s.len(), &s[..s.len().min(5)]),
        Message::Binary(b) => format!("binary {}", lossy(b)),
        Message::Ping(b) => format!("ping {}", lossy(b)),
        Message::Pong(b) => format!("pong {}", lossy(b)),
        Message::Close(c) => format!("close {:?}", c.map(|c| (c.code.0, c.reason))),
    }
}

#[test]
fn client_receives_messages_answers_pings_and_closes() {
    for chunk in [1, 3, 7, 64, 1 << 20] {
        let mut c = open_client(chunk, &WsConfig::default());
        let big = "x".repeat(70_000);
        server_frame(&mut c, true, OpCode::Text, b"hello");
        server_frame(&mut c, false, OpCode::Binary, b"frag1-");
        server_frame(&mut c, true, OpCode::Ping, b"are you there");
        server_frame(&mut c, false, OpCode::Continuation, b"frag2-");
        server_frame(&mut c, true, OpCode::Continuation, b"frag3");
        server_frame(&mut c, true, OpCode::Text, big.as_bytes());
        server_frame(&mut c, true, OpCode::Pong, b"");
        server_frame(&mut c, true, OpCode::Close, b"\x03\xe8done");

        let mut got = Vec::new();
        for _ in 0..1_000_000 {
            match c.poll() {
                Ok(Some(m)) => got.push(summary(&m)),
                Ok(None) => {}
                Err(e) => panic!("chunk {chunk}: {e}"),
            }
            if c.state() == WsState::Closing {
                break;
            }
        }
        assert_eq!(
            got,
            [
                "text 5 hello",
                "ping are you there",
                "binary frag1-frag2-frag3",
                "text 70000 xxxxx",
                "pong ",
                "close Some((1000, \"done\"))",
            ],
            "chunk {chunk}"
        );
        let sent = client_frames(&mut c);
        assert_eq!(
            sent,
            [
                (OpCode::Pong, b"are you there".to_vec()),
                (OpCode::Close, b"\x03\xe8".to_vec())
            ]
        );
        assert!(matches!(c.send_text("late"), Err(WsError::NotOpen)));
        c.transport_mut().eof = true;
        assert!(matches!(c.poll(), Err(WsError::Closed)));
        assert!(c.is_closed());
    }
}

#[test]
fn client_initiated_close_and_sending() {
    let mut c = open_client(1 << 20, &WsConfig::default());
    c.send_text("{\"method\":\"SUBSCRIBE\"}").unwrap();
    c.send_binary(&[1, 2, 3]).unwrap();
    c.send_ping(b"p").unwrap();
    c.close(CloseCode::GOING_AWAY, "bye").unwrap();
    assert_eq!(c.state(), WsState::CloseSent);
    assert!(matches!(c.send_text("x"), Err(WsError::NotOpen)));
    let sent = client_frames(&mut c);
    assert_eq!(
        sent,
        [
            (OpCode::Text, b"{\"method\":\"SUBSCRIBE\"}".to_vec()),
            (OpCode::Binary, vec![1, 2, 3]),
            (OpCode::Ping, b"p".to_vec()),
            (OpCode::Close, b"\x03\xe9bye".to_vec()),
        ]
    );
    // Data still arriving after our close is delivered; then the server's close.
    server_frame(&mut c, true, OpCode::Text, b"in flight");
    server_frame(&mut c, true, OpCode::Close, b"\x03\xe9");
    assert_eq!(c.poll().unwrap(), Some(Message::Text("in flight")));
    assert_eq!(
        c.poll().unwrap(),
        Some(Message::Close(Some(CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: ""
        })))
    );
    assert_eq!(c.state(), WsState::Closing);
    assert!(client_frames(&mut c).is_empty(), "no second close frame");
    c.transport_mut().eof = true;
    assert!(matches!(c.poll(), Err(WsError::Closed)));
}

#[test]
fn client_fails_protocol_errors_with_close_codes() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (vec![0xC1, 0x00], 1002),                           // RSV1
        (vec![0x83, 0x00], 1002),                           // reserved opcode
        (vec![0x09, 0x00], 1002),                           // fragmented ping
        (vec![0x89, 126, 0, 126], 1002),                    // control > 125
        (vec![0x80, 0x00], 1002),                           // continuation without start
        (vec![0x81, 0x81, 0, 0, 0, 0, 0], 1002),            // masked from server
        (vec![0x81, 0x02, 0xff, 0xfe], 1007),               // invalid UTF-8
        (vec![0x88, 0x01, 0x03], 1002),                     // 1-byte close payload
        (vec![0x88, 0x02, 0x03, 0xed], 1002),               // close code 1005
        (vec![0x82, 127, 0, 0, 0, 0, 0, 0x10, 0, 1], 1009), // 1 MiB + 1 > max
    ];
    let cfg = WsConfig {
        max_frame: 1 << 20,
        max_message: 1 << 20,
        ..WsConfig::default()
    };
    for (bytes, code) in cases {
        let mut c = open_client(1 << 20, &cfg);
        c.transport_mut().input.extend_from_slice(&bytes);
        let e = loop {
            match c.poll() {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(e.close_code(), Some(CloseCode(code)), "{bytes:?}: {e}");
        assert!(c.is_closed());
        let sent = client_frames(&mut c);
        assert_eq!(sent.len(), 1, "{bytes:?}");
        assert_eq!(sent[0].0, OpCode::Close);
        assert_eq!(&sent[0].1[..2], &code.to_be_bytes());
        assert!(matches!(c.poll(), Err(WsError::Closed)));
    }
}

#[test]
fn client_reports_abnormal_closure_and_bad_handshake() {
    let mut c = open_client(1 << 20, &WsConfig::default());
    server_frame(&mut c, true, OpCode::Text, b"abc");
    c.transport_mut()
        .input
        .extend_from_slice(&[0x81, 0x05, b'x']);
    c.transport_mut().eof = true;
    assert_eq!(c.poll().unwrap(), Some(Message::Text("abc")));
    assert!(matches!(c.poll(), Err(WsError::AbnormalClosure)));

    let mut c = WsClient::new(Mem::new(100), "h", "/", &WsConfig::default()).unwrap();
    assert!(c.poll().unwrap().is_none());
    c.transport_mut()
        .input
        .extend_from_slice(b"HTTP/1.1 403 Forbidden\r\n\r\n");
    assert!(matches!(
        c.poll(),
        Err(WsError::Handshake(HandshakeError::Status(403)))
    ));
    assert!(c.is_closed());
}

#[test]
fn last_payload_mut_gives_in_place_access() {
    let mut c = open_client(1 << 20, &WsConfig::default());
    server_frame(&mut c, true, OpCode::Text, b"{\"a\":1}");
    server_frame(&mut c, false, OpCode::Text, b"{\"b\":");
    server_frame(&mut c, true, OpCode::Continuation, b"2}");
    assert!(matches!(c.poll().unwrap(), Some(Message::Text(_))));
    let p = c.last_payload_mut().unwrap();
    assert_eq!(p, b"{\"a\":1}");
    p[0] = b'X';
    assert!(matches!(
        c.poll().unwrap(),
        Some(Message::Text("{\"b\":2}"))
    ));
    assert_eq!(c.last_payload_mut().unwrap(), b"{\"b\":2}");
    assert!(c.poll().unwrap().is_none());
    assert!(c.last_payload_mut().is_none());
}

#[test]
fn oversized_send_is_rejected_and_small_buffers_still_work() {
    let cfg = WsConfig {
        send_buffer: 1024,
        max_frame: 300,
        max_message: 1000,
        read_chunk: 16,
        ..WsConfig::default()
    };
    let mut c = open_client(5, &cfg);
    match c.send_binary(&[0u8; 2000]) {
        Err(WsError::BufferTooSmall { need, have }) => {
            assert_eq!(need, 2000 + 8);
            assert_eq!(have, 1024);
        }
        r => panic!("{r:?}"),
    }
    assert!(
        c.is_open(),
        "a local send error does not fail the connection"
    );
    c.send_binary(&[7u8; 1000]).unwrap();
    assert_eq!(client_frames(&mut c), [(OpCode::Binary, vec![7u8; 1000])]);
    // Receive with a tiny read chunk: many compactions; a 3-fragment message up to the limit.
    for _ in 0..50 {
        server_frame(&mut c, false, OpCode::Binary, &[1u8; 300]);
        server_frame(&mut c, false, OpCode::Continuation, &[2u8; 300]);
        server_frame(&mut c, false, OpCode::Continuation, &[3u8; 300]);
        server_frame(&mut c, true, OpCode::Continuation, &[4u8; 100]);
        server_frame(&mut c, true, OpCode::Text, &[b'a'; 299]);
    }
    let (mut frag, mut small) = (0, 0);
    for _ in 0..100_000 {
        match c.poll().unwrap() {
            Some(Message::Binary(b)) => {
                assert_eq!(b.len(), 1000);
                assert_eq!((b[0], b[300], b[600], b[999]), (1, 2, 3, 4));
                frag += 1;
            }
            Some(Message::Text(t)) => {
                assert_eq!(t.len(), 299);
                small += 1;
            }
            Some(m) => panic!("{m:?}"),
            None => {
                if frag == 50 && small == 50 {
                    break;
                }
            }
        }
    }
    assert_eq!((frag, small), (50, 50));
    // One byte over the message limit fails with 1009.
    server_frame(&mut c, false, OpCode::Binary, &[1u8; 300]);
    server_frame(&mut c, false, OpCode::Continuation, &[2u8; 300]);
    server_frame(&mut c, false, OpCode::Continuation, &[3u8; 300]);
    server_frame(&mut c, true, OpCode::Continuation, &[3u8; 101]);
    let e = loop {
        match c.poll() {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            e,
            WsError::MessageTooLarge {
                len: 1001,
                max: 1000
            }
        ),
        "{e:?}"
    );
}
