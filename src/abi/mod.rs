//! The C ABI. Every `C_*` function converts raw pointers into Rust values (`args`), calls the
//! core, and maps the result to a `CK_RV` in `guard`, which also stops panics at the boundary.
//! This folder holds all of keyfront's pointer handling and nothing else.

mod args;
mod crypto;
mod functions;
mod general;
mod objects;
mod token;
mod unsupported;

use std::panic::{catch_unwind, AssertUnwindSafe};

use cryptoki_sys::*;

use crate::error::Result;

/// Runs one `C_*` body: `Ok` is `CKR_OK`, an error becomes its `CK_RV`, a panic becomes
/// `CKR_GENERAL_ERROR` (logged) instead of unwinding into C.
fn guard(name: &'static str, body: impl FnOnce() -> Result<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            let rv = e.rv();
            match (rv, &e) {
                (CKR_GENERAL_ERROR | CKR_DEVICE_ERROR | CKR_DEVICE_MEMORY, _) => tracing::error!("{name}: {e}"),
                // What a key service refused, in its own words.
                (_, crate::error::Error::Service { .. }) => tracing::warn!("{name}: {e}"),
                _ => tracing::debug!("{name}: {e}"),
            }
            rv
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!("{name}: internal panic: {what}");
            CKR_GENERAL_ERROR
        }
    }
}

/// Defines exported `C_*` functions whose bodies return `Result<()>`.
macro_rules! ck_fn {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block)*) => {$(
        #[no_mangle]
        #[allow(non_snake_case)]
        pub extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            #[allow(unused_unsafe)]
            // SAFETY: PKCS#11 makes the caller pass pointers that are NULL or valid for the
            // lengths given with them; the `args` helpers check every NULL and length before
            // a dereference, and nothing is kept past the call.
            let body = || unsafe { $body };
            $crate::abi::guard(stringify!($name), body)
        }
    )*};
}
pub(crate) use ck_fn;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::rv;
    use crate::logging::capture::logged;

    fn warn_and_up() -> tracing_subscriber::EnvFilter {
        tracing_subscriber::EnvFilter::new("warn")
    }

    #[test]
    fn a_panic_becomes_general_error_and_is_logged() {
        // Both payload types a panic carries: `String` (formatted) and `&str` (a literal).
        let (log, code) = logged(warn_and_up(), || guard("C_Formatted", || panic!("slot {} broke", 7)));
        assert_eq!(code, CKR_GENERAL_ERROR);
        assert!(log.contains("ERROR") && log.contains("C_Formatted: internal panic: slot 7 broke"), "{log}");
        let (log, code) = logged(warn_and_up(), || guard("C_Literal", || panic!("plain words")));
        assert_eq!(code, CKR_GENERAL_ERROR);
        assert!(log.contains("C_Literal: internal panic: plain words"), "{log}");
    }

    #[test]
    fn results_pass_through_unlogged_below_warn() {
        let (log, code) = logged(warn_and_up(), || guard("C_Fine", || Ok(())));
        assert_eq!((code, log.as_str()), (CKR_OK, ""));
        let (log, code) = logged(warn_and_up(), || guard("C_Refused", || Err(rv(CKR_ARGUMENTS_BAD))));
        assert_eq!((code, log.as_str()), (CKR_ARGUMENTS_BAD, ""), "a caller's mistake is a debug line only");
        let (log, code) = logged(warn_and_up(), || guard("C_Broken", || Err(rv(CKR_DEVICE_ERROR))));
        assert_eq!(code, CKR_DEVICE_ERROR);
        assert!(log.contains("ERROR") && log.contains("C_Broken") && !log.contains("panic"), "{log}");
    }
}
