//! Logging through `tracing`: level from `KEYFRONT_LOG` (default `warn`), output to the file
//! named by `KEYFRONT_LOG_FILE` or stderr. Nothing secret is ever passed to a log macro.

use std::os::fd::AsFd;
use std::sync::Once;

use tracing_subscriber::EnvFilter;

static INIT: Once = Once::new();

/// The filter for `KEYFRONT_LOG` (`None`: warnings and errors).
fn filter(spec: Option<&str>) -> EnvFilter {
    let mut filter = spec.and_then(|s| EnvFilter::try_new(s).ok()).unwrap_or_else(|| EnvFilter::new("warn"));
    // The HTTP and TLS crates of the cloud slots dump raw requests and replies at trace level
    // (tokens, request signatures, plaintexts): never below debug for them, whatever the
    // filter asks.
    for quiet in ["ureq=debug", "ureq_proto=debug", "rustls=debug"] {
        filter = filter.add_directive(quiet.parse().expect("a valid directive"));
    }
    filter
}

pub fn init() {
    INIT.call_once(|| {
        let filter = filter(std::env::var("KEYFRONT_LOG").ok().as_deref());
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
        let file = std::env::var_os("KEYFRONT_LOG_FILE")
            .filter(|p| !p.is_empty())
            .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        // Lines are written through `&File`: one write(2) per line and no lock of the
        // process's own. A `Mutex<File>`, or std's stderr (locked during each write), held
        // by a parent thread at the moment another thread forks stays locked for ever in
        // the child, whose first log line would then hang.
        use std::io::IsTerminal;
        let ansi = file.is_none() && std::io::stderr().is_terminal();
        let stderr = || std::io::stderr().as_fd().try_clone_to_owned().ok().map(std::fs::File::from);
        // The host application may have its own subscriber; then ours stays out of the way.
        let _ = match file.or_else(stderr) {
            Some(f) => builder.with_ansi(ansi).with_writer(std::sync::Arc::new(f)).try_init(),
            None => builder.with_ansi(ansi).with_writer(std::io::stderr).try_init(),
        };
    });
}

/// Collecting what is logged, for tests that check a log line.
#[cfg(test)]
pub(crate) mod capture {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` with a subscriber of this thread filtered by `filter`; returns what it
    /// logged and `f`'s result.
    pub fn logged<T>(filter: tracing_subscriber::EnvFilter, f: impl FnOnce() -> T) -> (String, T) {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(move || writer.clone()).finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        (log, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_never_reaches_the_http_crates() {
        for spec in ["trace", "ureq=trace,ureq_proto=trace,rustls=trace,keyfront=trace"] {
            let (log, ()) = capture::logged(filter(Some(spec)), || {
                tracing::trace!(target: "ureq_proto", "x-vault-token: s3cret");
                tracing::trace!(target: "ureq", "authorization: AWS4-HMAC-SHA256 s3cret");
                tracing::debug!(target: "ureq", "a request went out");
                tracing::trace!(target: "keyfront", "keyfront's own trace");
            });
            assert!(!log.contains("s3cret"), "{spec}: {log}");
            assert!(log.contains("a request went out") && log.contains("keyfront's own trace"), "{spec}: {log}");
        }
    }
}
