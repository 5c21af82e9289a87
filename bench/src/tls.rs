//! TLS rows: full TLS 1.3 handshakes per second (no resumption) from a client on loopback
//! against nginx with 2 workers, serving a TPM key (tpmkey provider activated by
//! openssl.cnf, no property query; through tpm2-abrmd; Debian's tpm2-openssl) or a software
//! key of the same type. One nginx runs at a time (swtpm has 3 object slots and no resource
//! manager here); every ratio is to the software key of the same type in the same round.
//!
//! The timed batches talk straight to swtpm: through the wire tap (a proxy thread and two
//! TCP connections per TPM command) the tap's own cost was a third of a TPM key's
//! handshake. TPM commands per handshake are counted in a pass of their own after the
//! rounds, with the same nginx set-up talking through the tap. Each round also times the
//! raw TPM operation a handshake needs (tss-esapi Sign P-256, RSA_Decrypt RSA-2048, straight
//! on swtpm): a TPM key's handshakes cannot outrun it. Under a latency profile
//! ([`crate::model`]) the batches go through the tap, which is then the modelled TPM.

use std::path::PathBuf;
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};
use tpmkey::public_key::KeyPublic;
use tpmkey::KeyFile;
use tpmkey_testenv::Abrmd;

use crate::bench::Bench;
use crate::nginx::{Nginx, Site};
use crate::operation::{public_pkey, Op};
use crate::parts::{release_dir, tpm2_openssl_module};
use crate::report::{join_notes, ratios_to_first, Kind, Round, Row, Status, Table, Target};
use crate::subject::Subject;
use crate::worker::Worker;
use tpmkey_testenv::tpm_command::KeyKind;

/// Untimed handshakes before each batch, so that both workers have loaded their key.
const WARM_UP: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    P256,
    Rsa2048,
}

pub const KEY_TYPES: [KeyType; 2] = [KeyType::P256, KeyType::Rsa2048];

impl KeyType {
    pub fn label(self) -> &'static str {
        match self {
            KeyType::P256 => "P-256",
            KeyType::Rsa2048 => "RSA-2048",
        }
    }

    fn op(self) -> Op {
        match self {
            KeyType::P256 => Op::EcdsaP256,
            KeyType::Rsa2048 => Op::RsaSign,
        }
    }

    /// The TPM operation one handshake needs (TLS 1.3 RSA signs with PSS, which the
    /// provider pads on the host around a raw RSA_Decrypt).
    pub fn tpm_op(self) -> Op {
        match self {
            KeyType::P256 => Op::EcdsaP256,
            KeyType::Rsa2048 => Op::RsaOaep,
        }
    }

    /// The command and key type of that operation, for a latency model's floor.
    pub fn tpm_command(self) -> (&'static str, KeyKind) {
        match self {
            KeyType::P256 => ("Sign", KeyKind::Ecc),
            KeyType::Rsa2048 => ("RSA_Decrypt", KeyKind::Rsa),
        }
    }

    fn raw_label(self) -> &'static str {
        match self {
            KeyType::P256 => "P-256, raw TPM Sign (tss-esapi, password auth, one process): the TPM's limit",
            KeyType::Rsa2048 => {
                "RSA-2048, raw TPM RSA_Decrypt (tss-esapi, password auth, one process): the TPM's limit"
            }
        }
    }

    /// The targets: P-256 against the software key; RSA-2048, which swtpm cannot
    /// sign as fast as software, against the raw RSA_Decrypt rate of the same round.
    fn target(self) -> Target {
        match self {
            KeyType::P256 => Target {
                min_ratio: Some(0.65),
                ..Target::default()
            },
            KeyType::Rsa2048 => Target {
                min_limit_ratio: Some(0.90),
                ..Target::default()
            },
        }
    }

    fn reference(self) -> &'static str {
        match self {
            KeyType::P256 => "reference (tpm2-openssl with a property query): 0.43, 3 cmds",
            KeyType::Rsa2048 => "reference (tpm2-openssl with a property query): 0.32",
        }
    }
}

/// Who holds the key nginx signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// A software key, OpenSSL's default provider only: the baseline.
    Software,
    /// The tpmkey provider straight on swtpm with this object policy.
    Tpmkey(&'static str),
    /// The tpmkey provider, objects=keep, with the P-256 key bound to PCR 16.
    TpmkeyPcr,
    /// The tpmkey provider through tpm2-abrmd (objects=auto, which keeps them there).
    TpmkeyAbrmd,
    /// Debian's tpm2-openssl activated the same way (no property query).
    Tpm2Openssl,
    /// tpm2-openssl with `default_properties = ?provider=tpm2` (the set-up its
    /// documentation asks for) through tpm2-abrmd: straight on swtpm its two nginx workers
    /// run out of object slots ("cannot duplicate context", 0x902).
    Tpm2OpensslAbrmd,
}

const SERVINGS: [Serving; 7] = [
    Serving::Software,
    Serving::Tpmkey("keep"),
    Serving::TpmkeyPcr,
    Serving::Tpmkey("per-operation"),
    Serving::TpmkeyAbrmd,
    Serving::Tpm2Openssl,
    Serving::Tpm2OpensslAbrmd,
];

impl Serving {
    pub fn label(self) -> String {
        match self {
            Serving::Software => "software key (default provider)".into(),
            Serving::Tpmkey(objects) => format!("TPM key, tpmkey provider, objects={objects}"),
            Serving::TpmkeyPcr => "TPM key bound to PCR 16, tpmkey provider, objects=keep".into(),
            Serving::TpmkeyAbrmd => "TPM key, tpmkey provider via tpm2-abrmd (objects=auto)".into(),
            Serving::Tpm2Openssl => {
                "TPM key, tpm2-openssl 1.1.1 via openssl.cnf, no property query".into()
            }
            Serving::Tpm2OpensslAbrmd => {
                "TPM key, tpm2-openssl 1.1.1 via tpm2-abrmd, default_properties ?provider=tpm2"
                    .into()
            }
        }
    }

    fn id(self) -> &'static str {
        match self {
            Serving::Software => "software",
            Serving::Tpmkey("keep") => "tpmkey-keep",
            Serving::Tpmkey(_) => "tpmkey-per-operation",
            Serving::TpmkeyPcr => "tpmkey-pcr",
            Serving::TpmkeyAbrmd => "tpmkey-abrmd",
            Serving::Tpm2Openssl => "tpm2-openssl",
            Serving::Tpm2OpensslAbrmd => "tpm2-openssl-abrmd",
        }
    }

    pub fn is_peer(self) -> bool {
        matches!(self, Serving::Tpm2Openssl | Serving::Tpm2OpensslAbrmd)
    }

    /// Whether this serving has a key of type `key` (a PCR-bound key is P-256 only).
    pub fn serves(self, key: KeyType) -> bool {
        self != Serving::TpmkeyPcr || key == KeyType::P256
    }

    fn target(self, key: KeyType) -> Target {
        // No command-count target here: without a resource manager only one of nginx's two
        // workers holds the keep lease (1 command per handshake, PolicyPCR + Sign for the
        // PCR-bound key) and the other runs per-operation, so the average depends on how the
        // kernel spreads connections. Two keepers would fit swtpm's three object slots but
        // leave a third TPM user no room for a storage key and a key (README "When keep is
        // safe"); provider/tests/nginx.rs asserts the keeper's count with one worker.
        if self == Serving::TpmkeyPcr {
            return Target {
                zero_failures: true,
                ..Target::default()
            };
        }
        let tpmkey = matches!(self, Serving::Tpmkey(_) | Serving::TpmkeyAbrmd);
        // The ratio targets are for tpmkey on the TPM; through tpm2-abrmd the row
        // shows what a resource manager costs (it swaps the session and key per command).
        let keep = self == Serving::Tpmkey("keep");
        let ratios = if keep {
            key.target()
        } else {
            Target::default()
        };
        Target {
            zero_failures: tpmkey,
            ..ratios
        }
    }
}

struct Case {
    key: KeyType,
    serving: Serving,
    row: Row,
    site: Option<Site>,
    traffic: String,
    first_error: String,
}

fn ssl(what: &str) -> impl Fn(openssl::error::ErrorStack) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A certificate for `public` (CN=localhost), issued by `issuer`: the client does not
/// check it, the server only needs one that matches its key.
fn certificate<T: HasPublic>(
    public: &PKeyRef<T>,
    issuer: &PKey<Private>,
) -> Result<Vec<u8>, String> {
    let mut name = X509NameBuilder::new().map_err(ssl("name"))?;
    name.append_entry_by_text("CN", "localhost")
        .map_err(ssl("name"))?;
    let name = name.build();
    let mut b = X509Builder::new().map_err(ssl("certificate"))?;
    b.set_version(2).map_err(ssl("version"))?;
    let serial = BigNum::from_u32(1)
        .and_then(|n| n.to_asn1_integer())
        .map_err(ssl("serial"))?;
    b.set_serial_number(&serial).map_err(ssl("serial"))?;
    b.set_subject_name(&name).map_err(ssl("subject"))?;
    b.set_issuer_name(&name).map_err(ssl("issuer"))?;
    b.set_pubkey(public).map_err(ssl("public key"))?;
    let not_before = Asn1Time::days_from_now(0).map_err(ssl("time"))?;
    let not_after = Asn1Time::days_from_now(7).map_err(ssl("time"))?;
    b.set_not_before(&not_before).map_err(ssl("time"))?;
    b.set_not_after(&not_after).map_err(ssl("time"))?;
    b.sign(issuer, MessageDigest::sha256())
        .map_err(ssl("signing"))?;
    b.build().to_pem().map_err(ssl("PEM"))
}

pub fn software_key(key: KeyType) -> Result<PKey<Private>, String> {
    match key {
        KeyType::P256 => EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
            .and_then(|g| EcKey::generate(&g))
            .and_then(PKey::from_ec_key)
            .map_err(ssl("P-256 key")),
        KeyType::Rsa2048 => Rsa::generate(2048)
            .and_then(PKey::from_rsa)
            .map_err(ssl("RSA-2048 key")),
    }
}

/// openssl.cnf activating the default provider and `name` (module file, its settings).
fn provider_cnf(name: &str, module: &str, settings: &[(&str, &str)]) -> String {
    let mut s = format!(
        "openssl_conf = init\n[init]\nproviders = provs\n[provs]\ndefault = dflt\n\
         {name} = extra\n[dflt]\nactivate = 1\n[extra]\nmodule = {module}\nactivate = 1\n"
    );
    for (k, v) in settings {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

/// How nginx reaches swtpm: straight (timed batches) or through the wire tap (counting,
/// and every batch under a latency profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Direct,
    Tapped,
}

/// Writes the key, certificate and openssl.cnf files of one case; its nginx site.
fn prepare(
    bench: &Bench,
    issuer: &PKey<Private>,
    key: KeyType,
    serving: Serving,
    abrmd: Option<&Abrmd>,
    path_to_tpm: Path,
) -> Result<Site, String> {
    let work = bench.work();
    let path = |name: String| work.join(name);
    let write = |p: &PathBuf, data: &[u8]| {
        std::fs::write(p, data).map_err(|e| format!("{}: {e}", p.display()))
    };
    let tag = match path_to_tpm {
        Path::Direct => format!("tls-{}-{}", key.label(), serving.id()),
        Path::Tapped => format!("tls-{}-{}-tapped", key.label(), serving.id()),
    };
    let (key_path, cert) = match serving {
        Serving::Software => {
            let k = software_key(key)?;
            let p = path(format!("{tag}.key"));
            write(&p, &k.private_key_to_pem_pkcs8().map_err(ssl("PEM"))?)?;
            (p, certificate(&*k, issuer)?)
        }
        _ => {
            let p = match serving {
                Serving::TpmkeyPcr => work.join(crate::platform::PCR_KEY_FILE),
                _ => work.join(key.op().key_file_name()),
            };
            let pem = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let file = KeyFile::from_pem(&pem).map_err(|e| e.to_string())?;
            let public = KeyPublic::parse(&file.public).map_err(|e| e.to_string())?;
            (p, certificate(&*public_pkey(&public.key)?, issuer)?)
        }
    };
    let cert_path = path(format!("{tag}.crt"));
    write(&cert_path, &cert)?;
    let tpmkey = release_dir()?.join("libtpmkey_provider.so");
    let tpmkey = tpmkey.display().to_string();
    let tcti = match path_to_tpm {
        Path::Direct => bench.tpm.tcti(),
        Path::Tapped => bench.tcti(),
    };
    let (cnf, env) = match serving {
        Serving::Software => (String::new(), Vec::new()),
        Serving::Tpmkey(objects) => (
            provider_cnf("tpmkey", &tpmkey, &[("tcti", &tcti), ("objects", objects)]),
            Vec::new(),
        ),
        Serving::TpmkeyPcr => (
            provider_cnf("tpmkey", &tpmkey, &[("tcti", &tcti), ("objects", "keep")]),
            Vec::new(),
        ),
        Serving::TpmkeyAbrmd => {
            let abrmd = abrmd.ok_or("tpm2-abrmd is not running")?;
            (
                provider_cnf("tpmkey", &tpmkey, &[("tcti", &abrmd.tcti())]),
                abrmd.env(),
            )
        }
        Serving::Tpm2Openssl => (
            provider_cnf("tpm2", &tpm2_openssl_module()?.display().to_string(), &[]),
            vec![("TPM2OPENSSL_TCTI".to_string(), tcti.clone())],
        ),
        Serving::Tpm2OpensslAbrmd => {
            let abrmd = abrmd.ok_or("tpm2-abrmd is not running")?;
            let mut env = abrmd.env();
            env.push(("TPM2OPENSSL_TCTI".to_string(), abrmd.tcti()));
            let module = tpm2_openssl_module()?.display().to_string();
            let cnf = provider_cnf("tpm2", &module, &[]).replacen(
                "providers = provs\n",
                "providers = provs\nalg_section = evp_properties\n",
                1,
            ) + "[evp_properties]\ndefault_properties = ?provider=tpm2\n";
            (cnf, env)
        }
    };
    let cnf_path = path(format!("{tag}.cnf"));
    write(&cnf_path, cnf.as_bytes())?;
    Ok(Site {
        dir: path(format!("{tag}-nginx")),
        key: key_path,
        certificate: cert_path,
        openssl_conf: cnf_path,
        env,
    })
}

/// Client threads (BENCH_TLS_THREADS, default 4). On 2 cores, 4 gave the highest
/// software-key rate (2 threads: 2,340/s, 4: 2,540/s; `openssl s_time -new`: 1,450/s), and
/// with 2 the TPM rows are bound by the client's 2 connections in flight, not by the server.
fn client_threads() -> String {
    std::env::var("BENCH_TLS_THREADS")
        .ok()
        .filter(|v| v.parse::<usize>().is_ok_and(|n| n > 0))
        .unwrap_or_else(|| "4".into())
}

/// `done <ok> <failed> <nanos> <first error>` from the client.
fn parse_done(reply: &str) -> Result<(u64, u64, Duration, String), String> {
    let mut w = reply.splitn(5, ' ');
    let (Some("done"), Some(ok), Some(failed), Some(nanos)) =
        (w.next(), w.next(), w.next(), w.next())
    else {
        return Err(format!("client answered \"{reply}\""));
    };
    let n = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("bad client reply \"{reply}\""))
    };
    Ok((
        n(ok)?,
        n(failed)?,
        Duration::from_nanos(n(nanos)?),
        w.next().unwrap_or_default().to_string(),
    ))
}

/// nginx up, a warm-up, a timed batch of `duration` (its TPM commands counted when
/// `path_to_tpm` is the tap), nginx down.
pub fn measure(
    bench: &Bench,
    site: &Site,
    path_to_tpm: Path,
    warm_up: Duration,
    duration: Duration,
) -> Result<(Round, String, String), String> {
    let mut nginx = Nginx::start(site)?;
    let port = nginx.port.to_string();
    let env = vec![(
        "OPENSSL_CONF".to_string(),
        bench.work().join("openssl.cnf").display().to_string(),
    )];
    let log = site.dir.join("client.log");
    let mut client = Worker::spawn("tls-client", &[&port, &client_threads()], &env, &log)?;
    let (ok, _, _, error) = parse_done(&client.ask(&format!("run {}", warm_up.as_millis()))?)?;
    if ok == 0 {
        return Err(format!(
            "no handshake succeeds ({error}); nginx: {}",
            nginx.log_tail(&site.dir)
        ));
    }
    bench.traffic();
    let reply = client.ask(&format!("run {}", duration.as_millis()))?;
    let traffic = bench.traffic();
    drop(client);
    nginx.stop();
    let (ok, failed, elapsed, mut error) = parse_done(&reply)?;
    if failed > 0 {
        error = format!("{error}; nginx: {}", nginx.log_tail(&site.dir));
    }
    let counted = path_to_tpm == Path::Tapped;
    Ok((
        Round {
            ops: ok,
            seconds: elapsed.as_secs_f64(),
            commands: counted.then_some(traffic.total),
            ratio: None,
            limit_ratio: None,
            model_ms: traffic.model_ms,
            failures: failed,
        },
        if counted {
            traffic.per_op(ok)
        } else {
            String::new()
        },
        error,
    ))
}

pub fn unavailable(bench: &Bench, serving: Serving) -> Option<String> {
    let parts = &bench.parts;
    let nginx = parts.nginx.clone();
    match serving {
        Serving::Software => nginx,
        Serving::Tpmkey(_) | Serving::TpmkeyPcr | Serving::TpmkeyAbrmd => {
            parts.provider.clone().or(nginx)
        }
        Serving::Tpm2Openssl | Serving::Tpm2OpensslAbrmd => parts.tpm2_openssl.clone().or(nginx),
    }
}

pub fn start_abrmd(tcti: &str) -> Result<Abrmd, String> {
    std::panic::catch_unwind(|| Abrmd::start_on(tcti))
        .map_err(|_| "tpm2-abrmd did not start (see the panic above)".to_string())
}

/// The raw TPM operation a key type's handshake needs, timed straight on swtpm in a worker
/// of its own: the rate no TPM-key row of that type can exceed.
struct Limit {
    key: KeyType,
    row: Row,
    worker: Option<Worker>,
}

impl Limit {
    fn start(bench: &Bench, key: KeyType) -> Limit {
        let mut row = Row::new(key.raw_label(), Target::default());
        let op = key.tpm_op();
        let env = Subject::Raw.env(&bench.tpm.tcti(), bench.work());
        let dir = bench.work().display().to_string();
        let log = bench.work().join(format!("tls-limit-{}.log", op.id()));
        let worker = Worker::spawn("worker", &[Subject::Raw.id(), op.id(), &dir], &env, &log);
        let worker = worker.map_err(|e| row.fail(e)).ok();
        Limit { key, row, worker }
    }

    /// One timed batch; the rate, if the batch ran.
    fn measure(&mut self, bench: &Bench, round: usize) -> Option<f64> {
        let worker = self.worker.as_mut()?;
        let batch = worker.acquire().and_then(|()| {
            let (ops, elapsed) = worker.run(bench.settings.duration)?;
            worker.release()?;
            Ok(Round {
                ops,
                seconds: elapsed.as_secs_f64(),
                ..Round::default()
            })
        });
        self.row.left(bench.check_leftovers());
        match batch {
            Ok(r) => {
                let rate = r.rate();
                self.row.rounds.push(r);
                Some(rate).filter(|r| *r > 0.0)
            }
            Err(e) => {
                self.row.fail(format!("round {}: {e}", round + 1));
                self.worker = None;
                None
            }
        }
    }
}

pub fn run(bench: &Bench) -> Table {
    let mut table = Table::new(
        "TLS 1.3 full handshakes/s, nginx 1.22 (2 workers), provider via openssl.cnf",
        Kind::Rate,
        "software key, same type",
    );
    let issuer = software_key(KeyType::P256);
    let abrmd = start_abrmd(&bench.tpm.tcti());
    let mut cases = Vec::new();
    for key in [KeyType::P256, KeyType::Rsa2048] {
        for serving in SERVINGS.into_iter().filter(|s| s.serves(key)) {
            let name = format!("{}, {}", key.label(), serving.label());
            let mut row = match unavailable(bench, serving) {
                Some(reason) => Row::not_available(name, reason),
                None => Row::new(name, serving.target(key)),
            };
            row.peer = serving.is_peer();
            let site = site(bench, &issuer, &abrmd, key, serving, Path::Direct);
            let site = site.map_err(|e| row.fail(e)).ok();
            cases.push(Case {
                key,
                serving,
                row,
                site,
                traffic: String::new(),
                first_error: String::new(),
            });
        }
    }
    let mut limits: Vec<Limit> = KEY_TYPES.iter().map(|k| Limit::start(bench, *k)).collect();
    for round in 0..bench.settings.rounds {
        eprintln!("  tls round {}/{}", round + 1, bench.settings.rounds);
        let limit_rates: Vec<(KeyType, Option<f64>)> = limits
            .iter_mut()
            .map(|l| (l.key, l.measure(bench, round)))
            .collect();
        for c in cases.iter_mut() {
            let Some(site) = c.site.clone().filter(|_| c.row.status == Status::Ran) else {
                continue;
            };
            let duration = bench.settings.duration;
            let result = measure(bench, &site, Path::Direct, WARM_UP, duration);
            c.row.left(bench.check_leftovers());
            match result {
                Ok((r, _, error)) => {
                    if c.first_error.is_empty() {
                        c.first_error = error;
                    }
                    c.row.rounds.push(r);
                }
                Err(e) => c.row.fail(format!("round {}: {e}", round + 1)),
            }
        }
        for (key, limit) in &limit_rates {
            // SERVINGS starts with the software key: the baseline.
            let mut rows: Vec<&mut Row> = cases
                .iter_mut()
                .filter(|c| c.key == *key)
                .map(|c| &mut c.row)
                .collect();
            ratios_to_first(&mut rows, round);
            for row in rows.into_iter().skip(1) {
                if let (Some(r), Some(limit)) = (row.rounds.get_mut(round), limit) {
                    r.limit_ratio = Some(r.rate() / limit);
                }
            }
        }
    }
    drop(
        limits
            .iter_mut()
            .map(|l| l.worker.take())
            .collect::<Vec<_>>(),
    );
    drop(abrmd);

    eprintln!("  tls: counting TPM commands per handshake through the wire tap");
    let abrmd = start_abrmd(&bench.tcti());
    for c in cases.iter_mut().filter(|c| c.row.ran()) {
        let counted = site(bench, &issuer, &abrmd, c.key, c.serving, Path::Tapped)
            .and_then(|site| measure(bench, &site, Path::Tapped, WARM_UP, bench.settings.duration));
        c.row.left(bench.check_leftovers());
        match counted {
            Ok((r, traffic, _)) => {
                c.row.counted_commands = r.commands_per_op();
                c.traffic = traffic;
            }
            Err(e) => c.row.fail(format!("counting pass: {e}")),
        }
    }
    drop(abrmd);

    let mut finished: Vec<(KeyType, Row)> = Vec::new();
    for c in cases {
        let mut row = c.row;
        let mut notes = vec![c.traffic];
        if row.failures() > 0 {
            notes.push(format!(
                "{} failed handshakes; first: {}",
                row.failures(),
                c.first_error
            ));
        }
        match c.serving {
            Serving::TpmkeyAbrmd => notes.push("TPM cmds: abrmd to swtpm".into()),
            Serving::Tpmkey("keep") | Serving::TpmkeyPcr => {
                notes.push("one worker holds the keep lease, the other runs per-operation".into());
            }
            Serving::Tpm2OpensslAbrmd => {
                notes.push(format!("TPM cmds: abrmd to swtpm; {}", c.key.reference()));
            }
            _ => {}
        }
        row.notes = join_notes(notes);
        finished.push((c.key, row));
    }
    // Each key type's rows, then its TPM limit.
    finished.extend(limits.into_iter().map(|l| (l.key, l.row)));
    for key in KEY_TYPES {
        table.rows.extend(
            finished
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, r)| r.clone()),
        );
    }
    bench.flush_leftovers();
    table
}

pub fn site(
    bench: &Bench,
    issuer: &Result<PKey<Private>, String>,
    abrmd: &Result<Abrmd, String>,
    key: KeyType,
    serving: Serving,
    path_to_tpm: Path,
) -> Result<Site, String> {
    match (issuer, abrmd, serving) {
        (_, Err(e), Serving::TpmkeyAbrmd | Serving::Tpm2OpensslAbrmd) => Err(e.clone()),
        (Err(e), _, _) => Err(e.clone()),
        (Ok(issuer), abrmd, _) => prepare(
            bench,
            issuer,
            key,
            serving,
            abrmd.as_ref().ok(),
            path_to_tpm,
        ),
    }
}
