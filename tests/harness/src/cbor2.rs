//! An independent CBOR decoder for the tests: Debian's python3-cbor2 reads an ACME
//! device-attest-01 attestation object and says what it found.

use std::path::Path;
use std::process::Command;

use crate::run;

/// python3-cbor2's view of the attestation object in the file `cbor`: `fmt`, `attStmt.ver`,
/// `alg`, the number of `x5c` certificates and the Python types of `sig`, `certInfo` and
/// `pubArea`, space-separated (e.g. `tpm 2.0 -7 1 bytes bytes bytes`).
pub fn attestation_object_summary(cbor: &Path) -> String {
    let script = "import cbor2,sys\n\
        o=cbor2.loads(open(sys.argv[1],'rb').read())\n\
        s=o['attStmt']\n\
        print(o['fmt'], s['ver'], s['alg'], len(s['x5c']), type(s['sig']).__name__, \
        type(s['certInfo']).__name__, type(s['pubArea']).__name__)\n";
    // Debian's interpreter, where python3-cbor2 is installed (not a pyenv shim).
    let out = run(Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(cbor));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
