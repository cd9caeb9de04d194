//! A canned HTTP/1.1 server on 127.0.0.1 for the targets that feed service replies: each
//! request gets the answer the current input's `Answer` picks for it. One server per process,
//! started once; connections are kept alive across inputs (as the module's client keeps
//! them), each served by a thread of its own.
//!
//! Every request is answered at once (the client never waits for its timeout): with the
//! input's reply, or with a fixed `500 {}` when the input has none left. Statuses are kept
//! to 200–599 (a 1xx would make the client wait for another head); a 204 or 304 goes out
//! without a body, as HTTP says, so that no stray bytes are left on a kept connection for
//! the next input to read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// Header names in lowercase, values as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What the server answers: status and body.
pub type Reply = (u16, Vec<u8>);

/// Picks the reply to a request; `None`: the input has none for it.
pub type Answer = Box<dyn FnMut(&Seen) -> Option<Reply> + Send>;

pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    answer: Arc<Mutex<Option<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// The process's server, started at the first call.
    pub fn get() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
            let url = format!("http://{}", listener.local_addr().expect("local address"));
            let answer: Arc<Mutex<Option<Answer>>> = Arc::new(Mutex::new(None));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (a, s) = (answer.clone(), seen.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let (a, s) = (a.clone(), s.clone());
                    std::thread::spawn(move || serve(conn, a, s));
                }
            });
            Server { url, answer, seen }
        })
    }

    /// Answers the coming requests with `answer`; forgets the requests seen so far.
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = Some(answer);
        self.seen.lock().unwrap().clear();
    }

    /// The requests seen since the last `set`, in the order they were read.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, answer: Arc<Mutex<Option<Answer>>>, seen: Arc<Mutex<Vec<Seen>>>) {
    let _ = conn.set_nodelay(true);
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    while let Some(request) = read_request(&mut reader) {
        let reply = {
            let mut answer = answer.lock().unwrap();
            answer.as_mut().and_then(|a| a(&request))
        };
        seen.lock().unwrap().push(request);
        let (status, body) = reply.unwrap_or_else(|| (500, b"{}".to_vec()));
        let status = status.clamp(200, 599);
        let body: &[u8] = if status == 204 || status == 304 { &[] } else { &body };
        let mut out = format!("HTTP/1.1 {status} Fuzz\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n").into_bytes();
        if status != 204 && status != 304 {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

/// One request (head and `Content-Length` body); `None` at the end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen { method, path, headers, body })
}

/// The input's replies: the bytes after the header, split at 0xFF (a byte that never occurs
/// in UTF-8, so in no real JSON reply). Each part is `[tag] status body`: the tag is one byte
/// when `tagged`, the status three ASCII digits (200 when they are missing), the rest the body.
pub fn split_replies(data: &[u8], tagged: bool) -> Vec<(u8, u16, Vec<u8>)> {
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|b| *b == 0xff)
        .filter_map(|part| {
            let (tag, rest) = if tagged { (*part.first()?, &part[1..]) } else { (0, part) };
            let digits = rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit);
            let (status, body) = if digits {
                (std::str::from_utf8(&rest[..3]).ok()?.parse().ok()?, &rest[3..])
            } else {
                (200, rest)
            };
            Some((tag, status, body.to_vec()))
        })
        .collect()
}

/// FNV-1a, for picking a reply by what was asked (the same request, the same reply, whatever
/// order parallel requests come in).
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}
