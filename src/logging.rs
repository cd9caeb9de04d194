//! Logging through `tracing`: level from `KEYFRONT_LOG` (default `warn`), output to the file
//! named by `KEYFRONT_LOG_FILE` or stderr. Nothing secret is ever passed to a log macro.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

static INIT: Once = Once::new();

pub fn init() {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_env("KEYFRONT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
        let file = std::env::var_os("KEYFRONT_LOG_FILE")
            .filter(|p| !p.is_empty())
            .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        // The host application may have its own subscriber; then ours stays out of the way.
        let _ = match file {
            Some(f) => builder.with_ansi(false).with_writer(std::sync::Mutex::new(f)).try_init(),
            None => {
                use std::io::IsTerminal;
                builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).try_init()
            }
        };
    });
}
