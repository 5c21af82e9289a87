//! The fault matrix of the platform-trust operations, through the core API on a swtpm
//! behind the harness's fault injector: signing with a PCR-bound key (the fault in
//! PolicyPCR, and in the Sign its policy session authorises), signing with a signed-policy
//! key (the fault in VerifySignature or PolicyAuthorize), unsealing (password and PCR
//! policy), TPM2_Certify and TPM2_Quote, each with every fault class of the matrix.
//!
//! Each cell asserts what the provider and token matrices do: a correct result (always
//! after a transient fault) or an error naming the cause, no hang, nothing left in the TPM
//! (except an object or session whose response was lost: nobody learnt its handle), the
//! next operation working, and the lockout counter unmoved (a disorderly restart may add
//! one when a DA-protected object was used: the TPM's rule). The table lands in
//! target/release/fault-matrix-platform.md.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use common::signing::{p256_signer, sign_and_verify, sign_policy};
use common::tapped_tpm;
use tpmkey::attest::certify;
use tpmkey::attest::quote::{self, PcrSelection as QuoteSelection, QuoteRequest};
use tpmkey::attest::AkPublic;
use tpmkey::attestation_key::AttestationKey;
use tpmkey::keys::read_pcrs;
use tpmkey::policy::{authorize_statement, PcrSelection, PolicyPcr, Statement};
use tpmkey::sealed::SealedData;
use tpmkey::{Error, KeySpec, TpmKey};
use tpmkey_testenv::fault_matrix::{self, Matrix};
use tpmkey_testenv::{Fault, FaultPlan};

const POLICY_PCR: u32 = 0x17F;
const POLICY_AUTHORIZE: u32 = 0x16A;
const VERIFY_SIGNATURE: u32 = 0x177;
const SIGN: u32 = 0x15D;
const UNSEAL: u32 = 0x15E;
const CERTIFY: u32 = 0x148;
const QUOTE: u32 = 0x158;

/// The core's response timeout in the matrix (`timeout`).
const TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one operation may take: a stalled command and its retry each wait for the
/// timeout; anything longer is a hang and ends the test binary (see [`Watchdog`]).
const LIMIT: Duration = Duration::from_secs(15);

const SECRET: &[u8] = b"a secret of the fault matrix";
const SEAL_AUTH: &[u8] = b"seal password";
const NONCE: &[u8] = b"verifier nonce of the matrix";

/// Everything the operations use, made before any fault.
struct Fixture {
    pcr_key: TpmKey,
    signed_key: TpmKey,
    sealed: SealedData,
    sealed_pcr: SealedData,
    ak: AttestationKey,
    ak_public: AkPublic,
    certified: TpmKey,
}

struct Op {
    name: &'static str,
    /// The commands doing the operation's work: the fault goes into the first of them.
    codes: &'static [u32],
    /// Whether the operation authorises a DA-protected object with its authValue.
    da_protected: bool,
    /// Runs the operation; panics when it succeeded with a wrong result.
    run: fn(&Fixture) -> tpmkey::Result<()>,
}

fn pcr16_now() -> Statement {
    let sel = PcrSelection::parse("sha256:16").unwrap();
    let values = read_pcrs(&sel).unwrap();
    Statement::Pcr(PolicyPcr::from_values(sel, &values).unwrap())
}

fn unseal_and_check(sealed: &SealedData, auth: &[u8]) -> tpmkey::Result<()> {
    let data: Zeroizing<Vec<u8>> = sealed.unseal(auth)?;
    assert_eq!(&data[..], SECRET, "wrong unsealed data accepted");
    Ok(())
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "PCR key: PolicyPCR",
            codes: &[POLICY_PCR],
            da_protected: false,
            run: |f| sign_and_verify(&f.pcr_key),
        },
        Op {
            name: "PCR key: Sign",
            codes: &[SIGN],
            da_protected: false,
            run: |f| sign_and_verify(&f.pcr_key),
        },
        Op {
            name: "signed policy: VerifySignature",
            codes: &[VERIFY_SIGNATURE],
            da_protected: false,
            run: |f| sign_and_verify(&f.signed_key),
        },
        Op {
            name: "signed policy: PolicyAuthorize",
            codes: &[POLICY_AUTHORIZE],
            da_protected: false,
            run: |f| sign_and_verify(&f.signed_key),
        },
        Op {
            name: "unseal (password)",
            codes: &[UNSEAL],
            da_protected: true,
            run: |f| unseal_and_check(&f.sealed, SEAL_AUTH),
        },
        Op {
            name: "unseal (PCR policy)",
            codes: &[UNSEAL],
            da_protected: false,
            run: |f| unseal_and_check(&f.sealed_pcr, b""),
        },
        Op {
            name: "certify",
            codes: &[CERTIFY],
            da_protected: false,
            run: |f| {
                let bundle = f.ak.certify(&f.certified, NONCE)?;
                let report = certify::verify(&bundle, &f.ak_public, NONCE);
                if let Err(e) = report.findings.check() {
                    panic!("certification that does not verify was accepted: {e}");
                }
                let name = report.key.map(|k| k.name);
                assert_eq!(name.as_deref(), Some(&f.certified.public().name[..]));
                Ok(())
            },
        },
        Op {
            name: "quote",
            codes: &[QUOTE],
            da_protected: false,
            run: |f| {
                let selection = QuoteSelection::parse_list("sha256:0,7,16").unwrap();
                let q = f.ak.quote(&selection, NONCE)?;
                let request = QuoteRequest {
                    nonce: NONCE.to_vec(),
                    selection,
                    expected: Vec::new(),
                };
                if let Err(e) = quote::verify(&q, &f.ak_public, &request).findings.check() {
                    panic!("a quote that does not verify was accepted: {e}");
                }
                Ok(())
            },
        },
    ]
}

fn prepare() -> Fixture {
    let pcr_key =
        TpmKey::generate_with_policy(KeySpec::EcP256, None, None, None, vec![pcr16_now()]).unwrap();

    let (signer_key, signer) = p256_signer();
    let policy_ref = [7u8; 32];
    let key = TpmKey::generate_with_policy(
        KeySpec::EcP256,
        None,
        None,
        None,
        vec![authorize_statement(&signer, &policy_ref)],
    )
    .unwrap();
    let mut file = key.key_file().unwrap();
    file.add_signed_policy(sign_policy(
        &signer_key,
        &signer,
        &policy_ref,
        &[pcr16_now()],
        "boot",
    ))
    .unwrap();
    let signed_key = TpmKey::from_key_file(&file, None).unwrap();

    let sealed = SealedData::seal(SECRET, SEAL_AUTH, true, None).unwrap();
    let sealed_pcr =
        SealedData::seal_with_policy(SECRET, b"", false, None, vec![pcr16_now()]).unwrap();
    let ak = AttestationKey::create(KeySpec::EcP256).unwrap();
    let ak_public = AkPublic::from_tpm2b_public(&ak.public().blob).unwrap();
    let certified = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    Fixture {
        pcr_key,
        signed_key,
        sealed,
        sealed_pcr,
        ak,
        ak_public,
        certified,
    }
}

/// Ends the test binary when one operation runs past [`LIMIT`]: a hang would otherwise
/// keep the test (and `make test`) waiting forever.
struct Watchdog {
    /// Deadline in milliseconds since the epoch; 0 when no operation runs.
    deadline: Arc<AtomicU64>,
    what: Arc<Mutex<String>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Watchdog {
    fn start() -> Watchdog {
        let deadline = Arc::new(AtomicU64::new(0));
        let what = Arc::new(Mutex::new(String::new()));
        let (d, w) = (deadline.clone(), what.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let at = d.load(Ordering::SeqCst);
            if at != 0 && now_ms() > at {
                eprintln!(
                    "{} did not return within {LIMIT:?}: a hang",
                    w.lock().unwrap()
                );
                std::process::exit(101);
            }
        });
        Watchdog { deadline, what }
    }

    fn run(&self, what: &str, f: impl FnOnce() -> tpmkey::Result<()>) -> tpmkey::Result<()> {
        *self.what.lock().unwrap() = what.to_owned();
        self.deadline
            .store(now_ms() + LIMIT.as_millis() as u64, Ordering::SeqCst);
        let start = Instant::now();
        let result = f();
        self.deadline.store(0, Ordering::SeqCst);
        assert!(
            start.elapsed() < LIMIT,
            "{what}: took {:?}",
            start.elapsed()
        );
        result
    }
}

/// Whether `e` names its cause: the TPM command and code, the TCTI, or a rejected response.
fn names_cause(e: &Error) -> bool {
    matches!(
        e,
        Error::Tpm { .. } | Error::Tcti { .. } | Error::Integrity(_)
    )
}

fn cause(e: &Error) -> String {
    let text = e.to_string();
    let short: String = text.chars().take(60).collect();
    format!("error: {}", short.replace('|', "/"))
}

#[test]
fn platform_operations_under_every_fault() {
    let (t, tap) = tapped_tpm(&[("timeout", "2"), ("objects", "per-operation")]);
    fault_matrix::freeze_lockout_counter(&t.swtpm);
    let fixture = prepare();
    tpmkey::connection::shutdown();
    fault_matrix::flush_leftovers(&t.swtpm);
    let watchdog = Watchdog::start();
    let mut matrix = Matrix::default();
    let mut problems = Vec::new();
    for op in ops() {
        for fault in fault_matrix::fault_classes(TIMEOUT) {
            let what = format!("[{fault} in {}]", op.name);
            let lockout = fault_matrix::lockout_counter(&t.swtpm);
            tap.inject(FaultPlan::on_any(op.codes, 0, fault));
            let result = watchdog.run(&what, || (op.run)(&fixture));
            let fired = !tap.faults_pending();
            let applied = tap.stop_injecting().last().is_some_and(|i| i.applied);
            tpmkey::connection::shutdown();
            let mut outcome = match (&result, fired) {
                (_, false) => "not reached".to_owned(),
                (_, true) if !applied => "n/a (no such area)".to_owned(),
                (Ok(()), true) => "ok".to_owned(),
                (Err(e), true) => cause(e),
            };
            if let Err(e) = &result {
                if !names_cause(e) {
                    problems.push(format!("{what}: an error that hides the cause: {e}"));
                }
                if fired && fault_matrix::must_recover(&fault, TIMEOUT) {
                    problems.push(format!("{what}: a transient fault failed it: {e}"));
                }
            }
            if !fired {
                problems.push(format!("{what}: the operation never sent {:x?}", op.codes));
            }
            let left = fault_matrix::leftovers(&t.swtpm);
            if !left.is_empty() {
                if op
                    .codes
                    .iter()
                    .any(|c| fault_matrix::loses_handle(&fault, *c, TIMEOUT))
                {
                    outcome.push_str(" (handle lost with the response)");
                } else {
                    problems.push(format!("{what}: left in the TPM: {left:?}"));
                }
                fault_matrix::flush_leftovers(&t.swtpm);
            }
            if let Err(e) = watchdog.run(&format!("{what}, next"), || (op.run)(&fixture)) {
                problems.push(format!("{what}: the next operation failed: {e}"));
            }
            tpmkey::connection::shutdown();
            let left = fault_matrix::leftovers(&t.swtpm);
            if !left.is_empty() {
                problems.push(format!("{what}, next: left in the TPM: {left:?}"));
                fault_matrix::flush_leftovers(&t.swtpm);
            }
            let now = fault_matrix::lockout_counter(&t.swtpm);
            let restart_rule = op.da_protected && fault == (Fault::Restart { orderly: false });
            if now == lockout + 1 && restart_rule {
                outcome.push_str(", DA +1 (the TPM's rule)");
            } else if now != lockout {
                problems.push(format!("{what}: lockout counter moved {lockout} -> {now}"));
            }
            matrix.record(&fault, op.name, &outcome);
        }
    }
    let path = matrix.write("platform");
    eprintln!("{}\n(table in {})", matrix.table(), path.display());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
