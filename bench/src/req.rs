//! `openssl req -new -x509` with a TPM key: one process from start to a self-signed
//! certificate on disk, through the tpmkey provider or tpm2-openssl (the key file the other
//! rows use, `-provider` on the command line as a user would type it).

use std::process::Command;
use std::time::Instant;

use crate::bench::Bench;
use crate::evp::{provider_dir, EvpStack};
use crate::operation::Op;
use crate::report::Round;
use crate::subject::Subject;

/// One `openssl req` run; its wall time and the commands it sent.
pub fn sample(bench: &Bench, stack: EvpStack) -> Result<(Round, String), String> {
    let work = bench.work();
    let key = work.join(Op::EcdsaP256.key_file_name());
    let out = work.join(format!("req-{}.crt", stack.provider_name()));
    let _ = std::fs::remove_file(&out);
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-new",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=tpmkey-bench",
    ]);
    if stack == EvpStack::Tpmkey {
        cmd.arg("-provider-path").arg(provider_dir(work));
    }
    cmd.args(["-provider", stack.provider_name(), "-provider", "default"])
        .arg("-key")
        .arg(&key)
        .arg("-out")
        .arg(&out)
        .envs(bench.env(Subject::Evp(stack)));
    bench.traffic();
    let start = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run openssl req: {e}"))?;
    let elapsed = start.elapsed();
    let traffic = bench.traffic();
    if !output.status.success() || !out.is_file() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(2).collect();
        return Err(format!(
            "openssl req failed ({}): {}",
            output.status,
            last.join(" | ")
        ));
    }
    Ok(traffic.sample(elapsed))
}
