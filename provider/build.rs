//! Compiles the C shim for the core's va_list error upcall (stable Rust cannot build a
//! va_list).

fn main() {
    println!("cargo:rerun-if-changed=shim/provider_shim.c");
    cc::Build::new()
        .file("shim/provider_shim.c")
        .warnings(true)
        .compile("tpmkey_provider_shim");
}
