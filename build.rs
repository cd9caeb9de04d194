// Bind the module's own symbols locally (-Bsymbolic): its function list must point at its own
// C_* functions even when another library loaded earlier in the process exports the same
// names (p11-kit, or a module pulled in by a dependency).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
    println!("cargo:rerun-if-changed=build.rs");
}
