//! Compiles the C shim for the core's va_list error upcall (stable Rust cannot build a
//! va_list).

fn main() {
    println!("cargo:rerun-if-changed=../include/provider_shim.c");
    println!("cargo:rerun-if-changed=../include/tpmkey.h");
    cc::Build::new()
        .file("../include/provider_shim.c")
        .warnings(true)
        .compile("tpmkey_provider_shim");
}
