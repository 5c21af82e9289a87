//! kill -9 during `tpmkey seal -o`, 50 times at moments spread over the command's run: the
//! output is afterwards either absent or a complete sealed file that unseals to the input.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;

const ROUNDS: usize = 50;

#[test]
fn kill_9_during_seal_leaves_the_output_absent_or_whole() {
    let env = Env::start();
    // Large enough that writing takes a while: a 1 MiB envelope.
    let secret: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    let input = env.path("secret");
    std::fs::write(&input, &secret).unwrap();
    let seal = |out: &std::path::Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tpmkey"));
        cmd.args([
            "seal",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TPMKEY_TCTI", env.swtpm.tcti())
        .env("TPMKEY_CONF", "/dev/null")
        .env("TPMKEY_STATE", env.dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd
    };
    let start = Instant::now();
    assert!(seal(&env.path("timing.tpm")).status().unwrap().success());
    let full = start.elapsed().as_micros() as u64;

    let (mut complete, mut absent) = (0, 0);
    for round in 0..ROUNDS {
        let out = env.path(&format!("s{round}.tpm"));
        let mut child = seal(&out).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(
            full * 6 * round as u64 / (5 * ROUNDS as u64),
        ));
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        // Without a resource manager the killed process's objects and session stay loaded.
        tpmkey_testenv::flush_leftovers(&env.swtpm);
        if out.exists() {
            let back = env.tpmkey_ok(["unseal", out.to_str().unwrap()]);
            assert!(
                back == secret,
                "round {round}: a sealed file that is not whole"
            );
            complete += 1;
        } else {
            absent += 1;
        }
    }
    let leftovers = common::temporary_files(env.dir.path());
    eprintln!(
        "{ROUNDS} seals killed (one run: {full} us): {complete} complete, {absent} absent, \
         none half; {leftovers} temporary files of killed writers left beside the outputs"
    );
}
