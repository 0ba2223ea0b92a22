//! The user-data stream: a listen key from the REST API (cold, blocking, at start-up), a cold
//! helper thread that keeps it alive (`PUT` every [`UserStreamConfig::keepalive`]), and the
//! WebSocket `<ws>/ws/<listenKey>` polled by the gateway stage, whose frames go to the state
//! machine (`Core::on_stream_frame`).
//!
//! Reconnecting a dropped stream is not done here yet: the stage reports it closed
//! ([`GatewayStage::user_stream_open`](super::GatewayStage::user_stream_open)) and the REST
//! responses and queries remain the source of truth for order state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use net::ws::{Message, WsClient, WsConfig};

use super::conn::{Conn, MaybeTls, Target};
use super::{Core, GatewayConfig, Market, UserStreamConfig};
use crate::venue::binance::orders::decode_listen_key;
use crate::venue::binance::sign::Credentials;

/// Frames handled per poll at most.
const FRAMES_PER_POLL: usize = 16;

/// One blocking HTTP exchange on a fresh connection (cold path). Returns status and body.
pub(super) fn blocking_request(
    target: &Target,
    request: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let mut c = Conn::new(request.len().max(256), 16 << 10);
    c.open(target).map_err(|e| e.to_string())?;
    c.tx[..request.len()].copy_from_slice(request);
    let deadline = Instant::now() + timeout;
    c.start(request.len(), Instant::now());
    loop {
        match c.drive() {
            Ok(Some(h)) => {
                let body = c.rx[h.body_start..h.body_start + h.body_len].to_vec();
                return Ok((h.status, body));
            }
            Ok(None) => {}
            Err(f) => return Err(format!("connection failed: {f:?}")),
        }
        if Instant::now() > deadline {
            return Err("no answer in time".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn listen_key_request(
    method: &str,
    market: Market,
    host: &str,
    key: &str,
    listen_key: Option<&str>,
) -> Vec<u8> {
    let query = listen_key.map_or(String::new(), |k| format!("?listenKey={k}"));
    format!(
        "{method} {}{query} HTTP/1.1\r\nHost: {host}\r\nX-MBX-APIKEY: {key}\r\nContent-Length: 0\r\n\r\n",
        market.listen_key_path()
    )
    .into_bytes()
}

/// The open user-data stream.
pub(super) struct UserStream {
    ws: WsClient<MaybeTls>,
    stop: Arc<AtomicBool>,
    keepalive: Option<JoinHandle<()>>,
}

impl UserStream {
    pub(super) fn start(
        us: &UserStreamConfig,
        cfg: &GatewayConfig,
        cred: &Credentials,
    ) -> Result<UserStream, String> {
        let req = listen_key_request("POST", cfg.market, &cfg.rest.host, cred.key.expose(), None);
        let (status, body) = blocking_request(&cfg.rest, &req, cfg.connect_timeout)?;
        if status != 200 {
            return Err(format!(
                "listen key request answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let listen_key = decode_listen_key(&body)
            .filter(|k| !k.is_empty() && k.iter().all(u8::is_ascii_alphanumeric))
            .ok_or("listen key response has no valid listenKey")?;
        let listen_key = String::from_utf8_lossy(listen_key).into_owned();
        let t = us.ws.open().map_err(|e| e.to_string())?;
        let ws_cfg = WsConfig {
            max_frame: 64 << 10,
            max_message: 64 << 10,
            read_chunk: 64 << 10,
            send_buffer: 4 << 10,
            auto_pong: true,
        };
        let ws = WsClient::new(t, &us.ws.host, &format!("/ws/{listen_key}"), &ws_cfg)
            .map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let keepalive = {
            let stop = Arc::clone(&stop);
            let rest = cfg.rest.clone();
            let req = listen_key_request(
                "PUT",
                cfg.market,
                &cfg.rest.host,
                cred.key.expose(),
                Some(&listen_key),
            );
            let period = us.keepalive;
            let timeout = cfg.connect_timeout;
            std::thread::Builder::new()
                .name("listenkey-keepalive".into())
                .spawn(move || {
                    let mut next = Instant::now() + period;
                    while !stop.load(Ordering::Relaxed) {
                        if Instant::now() >= next {
                            if let Err(e) = blocking_request(&rest, &req, timeout) {
                                tracing::warn!(error = %e, "listen key keep-alive failed");
                            }
                            next = Instant::now() + period;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                })
                .map_err(|e| e.to_string())?
        };
        Ok(UserStream {
            ws,
            stop,
            keepalive: Some(keepalive),
        })
    }

    pub(super) fn is_open(&self) -> bool {
        self.ws.is_open()
    }

    pub(super) fn poll(&mut self, core: &mut Core) -> usize {
        let mut n = 0;
        while n < FRAMES_PER_POLL {
            match self.ws.poll() {
                Ok(Some(Message::Text(t))) => core.on_stream_frame(t.as_bytes()),
                Ok(Some(Message::Binary(b))) => core.on_stream_frame(b),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break,
            }
            n += 1;
        }
        n
    }

    pub(super) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.keepalive.take() {
            let _ = h.join();
        }
    }
}

impl Drop for UserStream {
    fn drop(&mut self) {
        self.stop();
    }
}
