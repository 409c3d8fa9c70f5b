//! A counting proxy in front of PostgreSQL: hookd connects through it (without TLS,
//! so the protocol can be read), and it counts what hookd's sessions ask of the
//! server — statements (`Execute` and simple `Query` messages) and round trips
//! (`Sync` and `Query`: each waits for the server's `ReadyForQuery`). Bytes pass
//! through unchanged; only the frontend's message headers are read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Error;

/// What the sessions through one proxy have sent so far.
#[derive(Debug, Default)]
pub struct Counts {
    statements: AtomicU64,
    round_trips: AtomicU64,
}

/// A snapshot of [`Counts`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub statements: u64,
    pub round_trips: u64,
}

impl Sent {
    pub fn since(self, earlier: Sent) -> Sent {
        Sent {
            statements: self.statements.saturating_sub(earlier.statements),
            round_trips: self.round_trips.saturating_sub(earlier.round_trips),
        }
    }
}

/// A proxy listening on loopback, forwarding every connection to `upstream`.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = relay(client, server, &counts).await;
                    }
                });
            }
        });
        Ok(Self { addr, counts, accept })
    }

    pub fn sent(&self) -> Sent {
        Sent {
            statements: self.counts.statements.load(Ordering::Relaxed),
            round_trips: self.counts.round_trips.load(Ordering::Relaxed),
        }
    }
}

async fn relay(client: TcpStream, server: TcpStream, counts: &Counts) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let back = tokio::spawn(async move { tokio::io::copy(&mut server_rx, &mut client_tx).await });
    let mut reader = Frontend::default();
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = client_rx.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        reader.feed(&buf[..n], counts);
        server_tx.write_all(&buf[..n]).await?;
    }
    let _ = server_tx.shutdown().await;
    back.abort();
    Ok(())
}

/// The frontend's message stream, read header by header: the untyped start-up
/// messages first (an `SSLRequest` or `GSSENCRequest` may come before the
/// `StartupMessage`), then typed messages (one type byte, then a length counting
/// itself).
#[derive(Debug, Default)]
struct Frontend {
    started: bool,
    header: [u8; 8],
    have: usize,
    /// Bytes of the current message's body still to pass.
    skip: usize,
}

/// `SSLRequest` and `GSSENCRequest` codes: the real start-up message follows.
const ENCRYPTION_REQUESTS: [u32; 2] = [80_877_103, 80_877_104];

impl Frontend {
    fn feed(&mut self, mut bytes: &[u8], counts: &Counts) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            // Start-up messages: length and code (8 bytes); typed: type and length (5).
            let need = if self.started { 5 } else { 8 };
            let n = (need - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < need {
                continue;
            }
            self.have = 0;
            let word = |at: usize| {
                u32::from_be_bytes([
                    self.header[at],
                    self.header[at + 1],
                    self.header[at + 2],
                    self.header[at + 3],
                ])
            };
            if self.started {
                match self.header[0] {
                    b'E' => {
                        counts.statements.fetch_add(1, Ordering::Relaxed);
                    }
                    b'Q' => {
                        counts.statements.fetch_add(1, Ordering::Relaxed);
                        counts.round_trips.fetch_add(1, Ordering::Relaxed);
                    }
                    b'S' => {
                        counts.round_trips.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                self.skip = (word(1) as usize).saturating_sub(4);
            } else {
                let code = word(4);
                self.started = !ENCRYPTION_REQUESTS.contains(&code);
                self.skip = (word(0) as usize).saturating_sub(8);
            }
        }
    }
}

/// `url` (a `postgres://` URL) pointed at `proxy` instead of its server, without
/// TLS.
pub fn through(url: &str, proxy: SocketAddr) -> Result<String, Error> {
    let (scheme, rest) = url.split_once("://").ok_or("the database URL has no scheme")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    if host.is_empty() || host.contains(',') {
        return Err("the nodes scenario needs one TCP host in the database URL".into());
    }
    let sep = if tail.contains('?') { '&' } else { '?' };
    Ok(format!("{scheme}://{user}{proxy}{tail}{sep}sslmode=disable"))
}

/// The server `url` names: its one TCP host and port (5432 by default), as
/// tokio-postgres reads the URL.
pub async fn server(url: &str) -> Result<SocketAddr, Error> {
    let config: tokio_postgres::Config = url.parse()?;
    let (host, port) = match (config.get_hosts(), config.get_ports()) {
        ([tokio_postgres::config::Host::Tcp(host)], []) => (host.clone(), 5432),
        ([tokio_postgres::config::Host::Tcp(host)], [port]) => (host.clone(), *port),
        _ => return Err("the nodes scenario needs one TCP host in the database URL".into()),
    };
    tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .ok_or_else(|| format!("{host}:{port} does not resolve").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn counts_statements_and_round_trips_across_any_split() {
        let mut stream = Vec::new();
        // SSLRequest, then a start-up message.
        stream.extend_from_slice(&8_u32.to_be_bytes());
        stream.extend_from_slice(&80_877_103_u32.to_be_bytes());
        let params = b"user\0postgres\0\0";
        stream.extend_from_slice(&(8 + params.len() as u32).to_be_bytes());
        stream.extend_from_slice(&196_608_u32.to_be_bytes());
        stream.extend_from_slice(params);
        // A simple query, then two extended-protocol statements in one pipeline.
        stream.extend(typed(b'Q', b"BEGIN\0"));
        for _ in 0..2 {
            stream.extend(typed(b'B', b"\0\0\0\0\0\0\0"));
            stream.extend(typed(b'E', b"\0\0\0\0\0"));
        }
        stream.extend(typed(b'S', b""));
        for chunk in [1, 3, 7, stream.len()] {
            let counts = Counts::default();
            let mut reader = Frontend::default();
            for piece in stream.chunks(chunk) {
                reader.feed(piece, &counts);
            }
            assert_eq!(counts.statements.load(Ordering::Relaxed), 3, "chunks of {chunk}");
            assert_eq!(counts.round_trips.load(Ordering::Relaxed), 2, "chunks of {chunk}");
        }
    }

    #[tokio::test]
    async fn urls_are_pointed_at_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            through("postgres://postgres@127.0.0.1:5432/test?options=x", proxy).unwrap(),
            "postgres://postgres@127.0.0.1:7000/test?options=x&sslmode=disable"
        );
        assert_eq!(
            through("postgresql://u:p@db/hookd", proxy).unwrap(),
            "postgresql://u:p@127.0.0.1:7000/hookd?sslmode=disable"
        );
        assert_eq!(
            server("postgres://postgres@127.0.0.1:5432/test").await.unwrap(),
            "127.0.0.1:5432".parse().unwrap()
        );
        assert_eq!(
            server("postgres://u@127.0.0.1/test").await.unwrap(),
            "127.0.0.1:5432".parse().unwrap()
        );
    }
}
