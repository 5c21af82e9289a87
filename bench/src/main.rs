//! `make bench`: tpmkey measured against the TPM's own limit (raw tss-esapi with password
//! authorisation) and against the existing stacks, on a private swtpm with a wire tap that
//! counts TPM commands. Rows run in interleaved rounds; figures are medians over rounds and
//! ratios are taken inside a round. See bench/README in the report header for the knobs.
//!
//! The same binary is its own row worker: `worker`, `startup`, `signer`, `token-setup`,
//! `token-fill`, `token-scale` and `tls-client` are child modes the runner starts.

mod attest;
mod bench;
mod bus;
mod core_api;
mod evp;
mod model;
mod nginx;
mod operation;
mod parts;
mod platform;
mod raw;
mod report;
mod req;
mod runner;
mod scale;
mod ssh;
mod startup;
mod subject;
mod throughput;
mod tls;
mod tls_client;
mod token;
mod token_scale;
mod worker;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("worker") => worker::serve(&args[1..]),
        Some("startup") => startup::child(&args[1..]),
        Some("signer") => scale::child(&args[1..]),
        Some("token-setup") => token::setup(&args[1..]),
        Some("tls-client") => tls_client::child(&args[1..]),
        Some("token-fill") => token_scale::fill(&args[1..]),
        Some("token-scale") => token_scale::child(&args[1..]),
        None => runner::run(),
        Some(other) => Err(format!(
            "unknown mode \"{other}\" (run without arguments; the modes worker, startup, \
             signer, token-setup, token-fill, token-scale and tls-client are for the bench's own children)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpmkey-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
