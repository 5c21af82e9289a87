//! Device identity and proof (issue 15), each a `tpmkey` process from start to exit on the
//! swtpm with EK certificates: certify a key with the AK (`tpmkey attest`), quote PCRs
//! (`tpmkey quote`), and the enrolment round trip (`ak create`, `makecred` with the TCTI
//! pointing nowhere, `ak activate`). The model section runs these rows under the latency
//! profiles.

use std::time::Instant;

use crate::bench::Bench;
use crate::operation::Op;
use crate::platform::{run_ok, tpmkey_cli};
use crate::report::{Kind, Round, Row, Status, Table, Target};

const AK_FILE: &str = "ak.tpm";
const PERSISTENT_AK_FILE: &str = "ak-persistent.tpm";
/// Where the persistent AK of the quote row lives.
const PERSISTENT_AK: &str = "0x81000ab0";
const EK_CERT: &str = "ek-rsa.pem";
const ENROL_AK_FILE: &str = "ak-enrol.tpm";
const CREDENTIAL: &str = "enrol.cred";
/// The verifier's nonce, and the secret it wraps for the AK.
const NONCE: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "00112233445566778899aabbccddeeff";
const QUOTE_PCRS: &str = "sha256:0,7";
/// A TCTI where no TPM listens: the verifier needs none.
const NOWHERE: &str = "swtpm:host=127.0.0.1,port=1";

/// What a row proves, from process start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// `tpmkey attest KEY --ak ak.tpm --nonce HEX` of the P-256 key file.
    Certify,
    /// `tpmkey quote --ak ak.tpm --pcr sha256:0,7 --nonce HEX`, the AK re-derived.
    Quote,
    /// The same with an AK made by `tpmkey ak create --persist`.
    QuotePersistent,
    /// `tpmkey ak create`, `tpmkey makecred` (no TPM), `tpmkey ak activate`: three processes.
    Enrolment,
}

pub const PROOFS: [Proof; 4] = [
    Proof::Certify,
    Proof::Quote,
    Proof::QuotePersistent,
    Proof::Enrolment,
];

impl Proof {
    pub fn label(self) -> &'static str {
        match self {
            Proof::Certify => {
                "tpmkey attest (a process): TPM2_Certify of a P-256 key file by the AK"
            }
            Proof::Quote => {
                "tpmkey quote (a process): TPM2_Quote of sha256:0,7 by the AK, re-derived \
                 (CreatePrimary)"
            }
            Proof::QuotePersistent => {
                "tpmkey quote (a process): TPM2_Quote of sha256:0,7 by a persistent AK \
                 (ak create --persist)"
            }
            Proof::Enrolment => {
                "enrolment round trip: tpmkey ak create, tpmkey makecred (no TPM), \
                 tpmkey ak activate (three processes)"
            }
        }
    }

    /// The quote's target, "load the AK and quote": met by the persistent AK (Quote and
    /// PCR_Read); the re-derived AK costs a CreatePrimary and a FlushContext more.
    fn target(self) -> Target {
        Target {
            max_commands: (self == Proof::QuotePersistent).then_some(2.0),
            ..Target::default()
        }
    }

    pub fn row(self, bench: &Bench) -> Row {
        let mut row = Row::new(self.label(), self.target());
        if let Err(e) = &bench.attestation {
            row.status = Status::NotAvailable(e.clone());
        }
        row
    }

    /// One sample: wall time from the first process's start to the last one's exit, and
    /// every TPM command sent (the verifier's makecred sends none: it has no TPM).
    pub fn sample(self, bench: &Bench) -> Result<(Round, String), String> {
        let path = |name: &str| bench.work().join(name).display().to_string();
        let (ak, key) = (path(AK_FILE), path(Op::EcdsaP256.key_file_name()));
        let out = path("proof.pem");
        bench.traffic();
        let start = Instant::now();
        match self {
            Proof::Certify => {
                let args = ["attest", &key, "--ak", &ak, "--nonce", NONCE, "-o", &out];
                run_ok(tpmkey_cli(bench)?.args(args), "tpmkey attest")?;
            }
            Proof::Quote | Proof::QuotePersistent => {
                let ak = if self == Proof::Quote {
                    ak
                } else {
                    path(PERSISTENT_AK_FILE)
                };
                let args = [
                    "quote", "--ak", &ak, "--pcr", QUOTE_PCRS, "--nonce", NONCE, "-o", &out,
                ];
                run_ok(tpmkey_cli(bench)?.args(args), "tpmkey quote")?;
            }
            Proof::Enrolment => enrol(bench)?,
        }
        let elapsed = start.elapsed();
        let traffic = bench.traffic();
        let (round, seen) = traffic.sample(elapsed);
        Ok((round, seen))
    }
}

/// The round trip; checks that activate recovers the verifier's secret.
fn enrol(bench: &Bench) -> Result<(), String> {
    let path = |name: &str| bench.work().join(name).display().to_string();
    let (ak, cred) = (path(ENROL_AK_FILE), path(CREDENTIAL));
    let created = run_ok(
        tpmkey_cli(bench)?.args(["ak", "create", "-o", &ak]),
        "tpmkey ak create",
    )?;
    let created = String::from_utf8_lossy(&created);
    let name = created.trim().strip_prefix("name: ").ok_or_else(|| {
        format!(
            "tpmkey ak create printed \"{}\", not a name",
            created.trim()
        )
    })?;
    let ek = path(EK_CERT);
    let makecred = [
        "makecred",
        "--ek",
        &ek,
        "--ak-name",
        name,
        "--secret",
        SECRET,
        "-o",
        &cred,
    ];
    run_ok(
        tpmkey_cli(bench)?
            .env("TPMKEY_TCTI", NOWHERE)
            .args(makecred),
        "tpmkey makecred",
    )?;
    let secret = run_ok(
        tpmkey_cli(bench)?.args(["ak", "activate", &ak, &cred]),
        "tpmkey ak activate",
    )?;
    if String::from_utf8_lossy(&secret).trim() != SECRET {
        return Err("tpmkey ak activate did not print the verifier's secret".into());
    }
    Ok(())
}

/// The AKs of the certify and quote rows (one persistent), and the RSA EK certificate the verifier wraps
/// for, read from the TPM and checked against the manufacturer's CA.
pub fn provision(bench: &Bench) -> Result<(), String> {
    let path = |name: &str| bench.work().join(name).display().to_string();
    run_ok(
        tpmkey_cli(bench)?.args(["ak", "create", "-o", &path(AK_FILE)]),
        "tpmkey ak create",
    )?;
    let persistent = ["ak", "create", "--persist", PERSISTENT_AK, "-o"];
    run_ok(
        tpmkey_cli(bench)?
            .args(persistent)
            .arg(path(PERSISTENT_AK_FILE)),
        "tpmkey ak create --persist",
    )?;
    let (root, issuer) = (bench.ek_ca.root_cert(), bench.ek_ca.issuer_cert());
    run_ok(
        tpmkey_cli(bench)?
            .args(["ek", "cert", "-t", "rsa", "-o", &path(EK_CERT), "--ca"])
            .arg(root)
            .arg("--intermediate")
            .arg(issuer),
        "tpmkey ek cert",
    )?;
    bench.flush_leftovers();
    Ok(())
}

/// ms and TPM commands per proof, from process start.
pub fn run(bench: &Bench) -> Table {
    let mut table = Table::new(
        "Device identity and proof: process start to exit on swtpm with EK certificates \
         (TPM cmds: all the processes sent, in the notes by kind)",
        Kind::Latency,
        "",
    )
    .with_sample_label("ms from process start to exit");
    let mut rows: Vec<Row> = PROOFS.iter().map(|p| p.row(bench)).collect();
    let mut seen = vec![String::new(); PROOFS.len()];
    for round in 0..bench.settings.rounds {
        eprintln!("  attest round {}/{}", round + 1, bench.settings.rounds);
        for ((proof, row), s) in PROOFS.iter().zip(rows.iter_mut()).zip(&mut seen) {
            if row.status != Status::Ran {
                continue;
            }
            let result = proof.sample(bench);
            row.left(bench.check_leftovers());
            match result {
                Ok((r, t)) => {
                    row.rounds.push(r);
                    *s = t;
                }
                Err(e) => row.fail(format!("round {}: {e}", round + 1)),
            }
        }
    }
    for (mut row, s) in rows.into_iter().zip(seen) {
        row.notes = s;
        table.rows.push(row);
    }
    bench.flush_leftovers();
    table
}
