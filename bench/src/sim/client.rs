//! [`SimClient`]: a minimal blocking client of the simulator's REST API, signed as Binance
//! requires, one connection per request and no client crate, for the tests and tools that ask
//! the venue itself what it holds (the engine's own gateway is what they check, so it cannot be
//! what asks).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotpath::venue::binance::sign::{Signer, SIGNATURE_HEX_LEN};
use serde_json::Value;

use super::SimVenue;

/// A signed REST client of one simulator (see the [module docs](self)).
pub struct SimClient {
    addr: SocketAddr,
    key: String,
    signer: Signer,
}

impl SimClient {
    /// A client of the REST API at `addr` with this API key and secret.
    pub fn new(addr: SocketAddr, key: &str, secret: &str) -> SimClient {
        SimClient {
            addr,
            key: key.into(),
            signer: Signer::from_secret_bytes(secret.as_bytes()),
        }
    }

    /// A client of `venue`'s REST API with its credentials.
    pub fn for_venue(venue: &SimVenue) -> SimClient {
        SimClient::new(venue.rest_addr(), venue.api_key(), venue.api_secret())
    }

    /// `query` with a fresh `timestamp`, a `recvWindow` of a minute (a loaded test machine may
    /// be slow to send) and its signature appended.
    pub fn sign(&self, query: &str) -> String {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let sep = if query.is_empty() { "" } else { "&" };
        let q = format!("{query}{sep}recvWindow=60000&timestamp={ts}");
        let mut sig = [0u8; SIGNATURE_HEX_LEN];
        self.signer.sign_into(&[q.as_bytes()], &mut sig);
        format!("{q}&signature={}", String::from_utf8_lossy(&sig))
    }

    /// `method path?query`, signed when `signed`: the HTTP status and the JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &str,
        signed: bool,
    ) -> io::Result<(u16, Value)> {
        let q = if signed {
            self.sign(query)
        } else {
            query.to_owned()
        };
        let target = if q.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{q}")
        };
        let (status, body) = self.request(method, &target)?;
        let v = serde_json::from_str(&body)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}: {body}")))?;
        Ok((status, v))
    }

    /// `method target` as sent (no signing) with the API key: the HTTP status and the body.
    pub fn request(&self, method: &str, target: &str) -> io::Result<(u16, String)> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(
            s,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nX-MBX-APIKEY: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr, self.key
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_string()))
    }
}
