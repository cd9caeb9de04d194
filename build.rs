// Bind the module's own symbols locally (-Bsymbolic): its function list must point at its own
// C_* functions even when another library loaded earlier in the process exports the same
// names (p11-kit, or a module pulled in by a dependency).
//
// Stay loaded after dlclose (-z nodelete): the logger is process-global (the `tracing`
// dispatcher and an open KEYFRONT_LOG_FILE live in statics). A host that unloads the module
// and loads it again (p11-kit's proxy, pkcs11-tool, language bindings) would otherwise leak
// them at every unload and open the log file again (tests/unload.rs).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
