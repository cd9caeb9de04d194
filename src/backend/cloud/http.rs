//! The one HTTP client of the cloud slots: blocking (no async runtime inside the module),
//! kept-alive connections, TLS by rustls against the system roots or a slot's `ca_file`, and
//! bounded retries with exponential back-off and jitter.

use std::path::Path;
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use ureq::http;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A request as the service code builds it; built again for every attempt, so that a signed
/// request (AWS SigV4) carries a fresh date.
pub type Request = http::Request<Vec<u8>>;

/// A response with its whole body (wiped when dropped: a decryption's reply carries the
/// plaintext).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).chars().take(500).collect()
    }
}

/// How one call is retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub attempts: u32,
    /// The whole call, every attempt and pause included, ends by then.
    pub timeout: Duration,
    /// The first pause; each later one doubles, with jitter.
    pub first_delay: Duration,
}

impl RetryPolicy {
    pub fn new(attempts: u32, timeout_ms: u64) -> Self {
        RetryPolicy { attempts, timeout: Duration::from_millis(timeout_ms.max(1)), first_delay: Duration::from_millis(50) }
    }
}

pub struct HttpClient {
    agent: ureq::Agent,
    policy: RetryPolicy,
    /// The service's name for logs and errors.
    service: String,
}

impl HttpClient {
    /// A client that trusts the system roots, or only the certificates of `ca_file` (PEM).
    pub fn new(service: &str, ca_file: Option<&Path>, policy: RetryPolicy) -> Result<Self> {
        use ureq::tls::{RootCerts, TlsConfig};
        let roots = match ca_file {
            None => RootCerts::PlatformVerifier,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| Error::Config(format!("ca_file {}: {e}", path.display())))?;
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(Error::Config(format!("ca_file {}: no PEM certificate in it", path.display())));
                }
                RootCerts::new_with_certs(&certs)
            }
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .http_status_as_error(false)
            .timeout_global(Some(policy.timeout))
            .user_agent(concat!("keyfront/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(HttpClient { agent, policy, service: service.to_string() })
    }

    /// Sends the request `build` makes, and again on a connection that could not be made, a
    /// timeout (only when `idempotent`) or a reply `retryable` says is worth another try
    /// (throttling, 5xx), until the policy's attempts or time run out. Any reply that is not
    /// retried is returned, success or not; the service code reads its error.
    pub fn send(
        &self,
        call: &str,
        idempotent: bool,
        mut build: impl FnMut() -> Result<Request>,
        retryable: impl Fn(&Reply) -> bool,
    ) -> Result<Reply> {
        let deadline = Instant::now() + self.policy.timeout;
        let mut attempt = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.unreachable(call, "timed out"));
            }
            let outcome = self.once(build()?, left);
            let retry = match &outcome {
                Ok(reply) => retryable(reply),
                Err(Failure::NotSent(_)) => true,
                Err(Failure::Lost(_)) => idempotent,
            };
            if !retry || attempt >= self.policy.attempts {
                return match outcome {
                    Ok(reply) => Ok(reply),
                    Err(Failure::NotSent(why) | Failure::Lost(why)) => Err(self.unreachable(call, &why)),
                };
            }
            let pause = self.pause(attempt);
            match &outcome {
                Ok(reply) => tracing::info!(service = %self.service, call, status = reply.status, attempt = attempt + 1, "retrying: {}", reply.text()),
                Err(Failure::NotSent(why) | Failure::Lost(why)) => tracing::info!(service = %self.service, call, attempt = attempt + 1, "retrying: {why}"),
            }
            if Instant::now() + pause >= deadline {
                return match outcome {
                    Ok(reply) => Ok(reply),
                    Err(Failure::NotSent(why) | Failure::Lost(why)) => Err(self.unreachable(call, &why)),
                };
            }
            std::thread::sleep(pause);
            attempt += 1;
        }
    }

    fn once(&self, request: Request, left: Duration) -> std::result::Result<Reply, Failure> {
        let mut request = request;
        // HTTP/1.1 keeps connections by default, but some servers (LocalStack's gateway)
        // close each one unless asked: one signature should be one request, not a new TCP
        // (and TLS) connection too.
        request.headers_mut().entry(http::header::CONNECTION).or_insert(http::HeaderValue::from_static("keep-alive"));
        // The agent's own timeout covers one attempt; the call's deadline may be nearer.
        if left < self.policy.timeout {
            request = self.agent.configure_request(request).timeout_global(Some(left)).build();
        }
        // ureq gets the body by reference, so this copy (an Encrypt request carries the
        // plaintext) is wiped when the attempt ends.
        let (parts, body) = request.into_parts();
        let body = Zeroizing::new(body);
        let request = http::Request::from_parts(parts, &body[..]);
        match self.agent.run(request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(16 * 1024 * 1024)
                    .read_to_vec()
                    .map_err(|e| Failure::Lost(format!("reading the reply: {e}")))?;
                Ok(Reply { status, body: Zeroizing::new(body) })
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// Exponential back-off with "full jitter": a random pause up to the doubled delay.
    fn pause(&self, attempt: u32) -> Duration {
        let cap = self.policy.first_delay.saturating_mul(1u32 << attempt.min(10));
        let mut r = [0u8; 4];
        let _ = getrandom::fill(&mut r);
        let fraction = u32::from_le_bytes(r) as f64 / u32::MAX as f64;
        cap.mul_f64(0.5 + fraction / 2.0)
    }

    fn unreachable(&self, call: &str, why: &str) -> Error {
        Error::Service { rv: CKR_DEVICE_ERROR, message: format!("{} {call}: service unreachable: {why}", self.service) }
    }
}

/// Why an attempt got no reply.
enum Failure {
    /// The request never reached the service (no connection): always safe to send again.
    NotSent(String),
    /// It may have reached it (timeout, connection lost mid-way).
    Lost(String),
}

fn classify(e: ureq::Error) -> Failure {
    use std::io::ErrorKind;
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => Failure::NotSent(e.to_string()),
        ureq::Error::Io(ref io) if matches!(io.kind(), ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable) => {
            Failure::NotSent(e.to_string())
        }
        ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => Failure::NotSent(e.to_string()),
        _ => Failure::Lost(e.to_string()),
    }
}

/// Whether a reply is worth another try: throttled or a server-side failure.
pub fn is_throttled_or_5xx(reply: &Reply) -> bool {
    reply.status == 429 || reply.status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP server on 127.0.0.1 answering each connection's request with the
    /// next canned status; returns its address and how many requests it saw.
    fn canned_server(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = 0;
            for status in statuses {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                seen += 1;
                let body = format!("{{\"status\":{status}}}");
                let _ = write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
            seen
        });
        (addr, handle)
    }

    fn get(url: &str) -> Result<Request> {
        Ok(http::Request::get(url).body(Vec::new()).unwrap())
    }

    #[test]
    fn retries_throttling_then_returns_the_success() {
        let (addr, server) = canned_server(vec![429, 503, 200]);
        let client = HttpClient::new("test", None, RetryPolicy::new(3, 5_000)).unwrap();
        let reply = client.send("Get", true, || get(&addr), is_throttled_or_5xx).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(server.join().unwrap(), 3);
    }

    #[test]
    fn gives_up_after_the_attempts_with_the_last_reply() {
        let (addr, server) = canned_server(vec![500, 500]);
        let client = HttpClient::new("test", None, RetryPolicy::new(1, 5_000)).unwrap();
        let reply = client.send("Get", true, || get(&addr), is_throttled_or_5xx).unwrap();
        assert_eq!(reply.status, 500);
        assert_eq!(server.join().unwrap(), 2);
    }

    #[test]
    fn client_errors_are_not_retried() {
        let (addr, server) = canned_server(vec![400]);
        let client = HttpClient::new("test", None, RetryPolicy::new(3, 5_000)).unwrap();
        let reply = client.send("Get", true, || get(&addr), is_throttled_or_5xx).unwrap();
        assert_eq!(reply.status, 400);
        assert_eq!(server.join().unwrap(), 1);
    }

    /// Two calls, one connection: the server accepts a single connection and answers two
    /// requests on it.
    #[test]
    fn calls_share_a_kept_alive_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut served = 0;
            let mut pending = Vec::new();
            let mut buf = [0u8; 4096];
            while served < 2 {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    served += 1;
                    write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok").unwrap();
                }
            }
            served
        });
        let client = HttpClient::new("test", None, RetryPolicy::new(0, 3_000)).unwrap();
        for _ in 0..2 {
            let reply = client.send("Get", true, || get(&addr), is_throttled_or_5xx).unwrap();
            assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok"[..]));
        }
        assert_eq!(server.join().unwrap(), 2);
    }

    #[test]
    fn nobody_listening_is_a_device_error() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = HttpClient::new("test", None, RetryPolicy::new(2, 2_000)).unwrap();
        let e = client.send("Get", true, || get(&format!("http://127.0.0.1:{port}/")), is_throttled_or_5xx).unwrap_err();
        assert_eq!(e.rv(), CKR_DEVICE_ERROR);
    }

    #[test]
    fn a_ca_file_without_certificates_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(matches!(HttpClient::new("test", Some(&path), RetryPolicy::new(0, 100)), Err(Error::Config(_))));
    }
}
