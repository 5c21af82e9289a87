//! IKEv2 between two strongSwan charon daemons, each in a network namespace this test
//! makes, joined by a veth pair. The "gateway" authenticates with the token's keys, EC
//! P-256 and RSA-2048, which strongSwan's pkcs11 plugin loads from this module; the "peer"
//! has a software Ed25519 key. A software CA (Ed25519) certifies the token keys' public
//! keys (CKA_PUBLIC_KEY_INFO) for two gateway identities, and the peer's key. The peer
//! sets up one IKE SA to each identity and verifies the gateway's AUTH signature made by
//! the token: ECDSA with SHA-256 and RSA PKCS#1 v1.5 with SHA-256 (RFC 7427). Each IKE SA
//! carries a CHILD_SA, and pings between addresses that only the tunnel routes go through
//! it (the gateway's ESP packet counters show them).
//!
//! The CHILD_SAs: this kernel has no ESP/XFRM, so kernel-netlink cannot install SAs;
//! kernel-libipsec does ESP in user space instead, over a TUN device (ipsec0) with routes
//! into it in table 220 of each namespace (so `install_routes` stays on; kernel-netlink is
//! still loaded for addresses and routes). The connections force UDP encapsulation
//! (`encap = yes`), so ESP travels over charon's own UDP socket on port 4500.
//!
//! How the pieces reach each other:
//! * The swtpm listens on 127.0.0.1 of the test's network namespace, out of the gateway's
//!   reach: the gateway's module talks to it through a [`UnixBridge`] (TCTI
//!   `swtpm:path=...`); socket paths are shared across network namespaces.
//! * The token and its keys are made in the test process before charon starts; the
//!   gateway's charon gets the test's TPMKEY_* environment, with the bridge's TCTI.
//! * charon always writes /var/run/charon.pid (no setting moves it), so each one runs in a
//!   mount namespace of its own (`ip netns exec` makes one) with a private directory bound
//!   over /run. Its VICI socket is a path in the test's directory, where swanctl reaches it
//!   from the test's namespaces.
//! * The token keys are named in swanctl.conf by module and CKA_ID: sections
//!   `secrets.token-ec` and `secrets.token-rsa` with `module = tpmkey`, `handle = 01` (or
//!   `02`) and `pin`. The gateway
//!   needs the `openssl` plugin to parse its ECDSA certificate; `pkcs11` is loaded before
//!   it, so the pkcs11 plugin's key loader is asked first and takes the keys (the log says
//!   "loaded ECDSA private key from token"); openssl's engine loader (libp11) would only
//!   come after it.
//!
//! The namespaces (names carry the test's pid) are deleted and the charon processes
//! stopped by pid when the test ends, also on panic; namespaces left by a killed run are
//! deleted by the next one.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tpmkey_testenv::pkcs11_env::*;
use tpmkey_testenv::UnixBridge;

const CHARON: &str = "/usr/lib/ipsec/charon";
const SWANCTL: &str = "/usr/sbin/swanctl";
/// Prefix of this test's network namespace names; the test's pid follows.
const NS_PREFIX: &str = "tpmkey-ike-";
const GW_ADDR: &str = "10.231.0.1";
const PEER_ADDR: &str = "10.231.0.2";
const STARTUP: Duration = Duration::from_secs(10);

/// One gateway identity: a token key, its certificate, and the CHILD_SA's inner networks
/// (the gateway's and the peer's address there live on `lo`).
struct Case {
    name: &'static str,
    id: &'static [u8],
    scheme: &'static str,
    gw_inner: &'static str,
    peer_inner: &'static str,
}

impl Case {
    fn gw_id(&self) -> String {
        format!("{}.gateway.test", self.name)
    }
}

const CASES: [Case; 2] = [
    Case {
        name: "ec",
        id: EC_ID,
        scheme: "ECDSA_WITH_SHA256_DER",
        gw_inner: "10.232.1.1",
        peer_inner: "10.232.2.1",
    },
    Case {
        name: "rsa",
        id: RSA_ID,
        scheme: "RSA_EMSA_PKCS1_SHA2_256",
        gw_inner: "10.233.1.1",
        peer_inner: "10.233.2.1",
    },
];

fn net(addr: &str) -> String {
    let (prefix, _) = addr.rsplit_once('.').unwrap();
    format!("{prefix}.0/24")
}

fn ip(args: &[&str]) -> Output {
    tpmkey_testenv::run(Command::new("ip").args(args))
}

/// The gateway's and the peer's network namespaces, deleted on drop.
struct Namespaces {
    gw: String,
    peer: String,
}

impl Namespaces {
    fn create() -> Namespaces {
        delete_stale_namespaces();
        let pid = std::process::id();
        // The guard exists before the first namespace: whatever was made is deleted.
        let ns = Namespaces {
            gw: format!("{NS_PREFIX}gw-{pid}"),
            peer: format!("{NS_PREFIX}peer-{pid}"),
        };
        ip(&["netns", "add", &ns.gw]);
        ip(&["netns", "add", &ns.peer]);
        ip(&[
            "link", "add", "gw0", "netns", &ns.gw, "type", "veth", "peer", "name", "peer0",
            "netns", &ns.peer,
        ]);
        for (name, dev, addr) in [(&ns.gw, "gw0", GW_ADDR), (&ns.peer, "peer0", PEER_ADDR)] {
            ip(&["-n", name, "link", "set", "lo", "up"]);
            ip(&["-n", name, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", name, "link", "set", dev, "up"]);
        }
        for case in &CASES {
            ip(&["-n", &ns.gw, "addr", "add", case.gw_inner, "dev", "lo"]);
            ip(&["-n", &ns.peer, "addr", "add", case.peer_inner, "dev", "lo"]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // The veth pair goes with them.
        for name in [&self.gw, &self.peer] {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

/// Deletes namespaces of earlier runs of this test whose process is gone (killed before
/// its guards ran), after killing the processes left in them (that run's charons).
fn delete_stale_namespaces() {
    let listed = ip(&["netns", "list"]);
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !tpmkey_testenv::pid_exists(p)) {
            let inside = ip(&["netns", "pids", name]);
            for pid in String::from_utf8_lossy(&inside.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).output();
            }
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

/// A charon in namespace `ns` with the configuration in `dir` (strongswan.conf,
/// swanctl.conf and its credential folders); stopped by pid on drop.
struct Charon {
    name: &'static str,
    dir: PathBuf,
    child: Child,
}

impl Charon {
    fn start(name: &'static str, ns: &str, dir: &Path, env: &[(String, String)]) -> Charon {
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c"])
            .arg(r#"mount --bind "$1" /run && exec "$2""#)
            .arg("sh")
            .arg(&run)
            .arg(CHARON)
            .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("charon.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("charon.err")).unwrap())
            .spawn()
            .unwrap();
        let mut charon = Charon {
            name,
            dir: dir.to_path_buf(),
            child,
        };
        let start = Instant::now();
        while !charon.vici_path().exists() {
            let exited = charon.child.try_wait().unwrap();
            assert!(
                exited.is_none() && start.elapsed() < STARTUP,
                "{name} charon did not start ({exited:?}):\n{}",
                charon.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        charon
    }

    fn vici_path(&self) -> PathBuf {
        self.dir.join("charon.vici")
    }

    fn swanctl(&self, args: &[&str]) -> Output {
        Command::new(SWANCTL)
            .args(args)
            .arg("--uri")
            .arg(format!("unix://{}", self.vici_path().display()))
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }

    /// The end of charon's log and its stdout/stderr, for failure messages.
    fn diagnostics(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "--- {} charon.log (last 60 lines) ---\n{tail}\n--- {} charon stdout/stderr ---\n{}{}",
            self.name,
            self.name,
            read("charon.out"),
            read("charon.err")
        )
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        // Only a child that has not been reaped still owns its pid.
        if let (Ok(None), Ok(pid)) = (
            self.child.try_wait(),
            libc::pid_t::try_from(self.child.id()),
        ) {
            // SAFETY: kill(2) takes two integers; the pid is our own unreaped child's, so
            // not reused, and positive, never a process group.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(3) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
    }
}

/// strongswan.conf of one charon (and its swanctl): explicit plugin list, the VICI socket
/// and the log in `dir`.
fn strongswan_conf(dir: &Path, plugins: &str, extra: &str) {
    std::fs::write(
        dir.join("strongswan.conf"),
        format!(
            "charon {{\n  load = {plugins}\n  retransmit_tries = 2\n  filelog {{\n    \
             test {{\n      path = {log}\n      time_format = %T\n      flush_line = yes\n      \
             default = 1\n    }}\n  }}\n  plugins {{\n    \
             vici {{\n      socket = unix://{vici}\n    }}\n{extra}  }}\n}}\n\
             swanctl {{\n  load = pem pkcs1 pkcs8 x509 pubkey random nonce sha1 sha2 gmp \
             curve25519 openssl\n}}\n",
            log = dir.join("charon.log").display(),
            vici = dir.join("charon.vici").display(),
        ),
    )
    .unwrap();
}

/// One end of a connection: address, identity, certificate (in x509/), inner network.
struct End<'a> {
    addr: &'a str,
    id: &'a str,
    cert: &'a str,
    ts: String,
}

/// One swanctl connection with its CHILD_SA, both named `name`.
fn connection(name: &str, local: &End, remote: &End) -> String {
    format!(
        "  {name} {{\n    local_addrs = {}\n    remote_addrs = {}\n    \
         proposals = aes128-sha256-x25519\n    encap = yes\n    local {{\n      \
         auth = pubkey\n      id = {}\n      certs = {}\n    }}\n    \
         remote {{\n      auth = pubkey\n      id = {}\n      cacerts = ca.pem\n    \
         }}\n    children {{\n      {name} {{\n        local_ts = {}\n        \
         remote_ts = {}\n        esp_proposals = aes128-sha256\n      }}\n    \
         }}\n  }}\n",
        local.addr, remote.addr, local.id, local.cert, remote.id, local.ts, remote.ts
    )
}

/// The event of IKE SA `name` in `swanctl --list-sas --raw` output, split into its IKE
/// part and its CHILD_SA part.
fn raw_sa<'a>(raw: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let event = format!("list-sa event {{{name} {{");
    raw.lines()
        .find(|l| l.starts_with(&event))?
        .split_once("child-sas {")
}

/// The value of `key=` in a part of a raw swanctl message.
fn value<'a>(part: &'a str, key: &str) -> Option<&'a str> {
    let key = format!(" {key}=");
    let start = part.find(&key)? + key.len();
    part[start..].split([' ', '}']).next()
}

fn pki(dir: &Path, args: &[&str], out: &str) {
    let made = tpmkey_testenv::run(
        Command::new("pki")
            .args(args)
            .args(["--outform", "pem"])
            .current_dir(dir)
            .env("STRONGSWAN_CONF", dir.join("pki.conf")),
    );
    std::fs::write(dir.join(out), made.stdout).unwrap();
}

#[test]
fn ikev2_gateway_authenticates_with_token_keys_and_tunnels_traffic() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("ikev2");
    let dir = TempDir::new("ikev2");

    // Certificates: a software CA issues the gateway's for the token keys' public keys
    // and the peer's for its software key.
    let certs = dir.0.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(
        certs.join("pki.conf"),
        "pki {\n  load = pem pkcs1 pkcs8 x509 pubkey random nonce sha1 sha2 hmac drbg gmp \
         curve25519 openssl\n}\n",
    )
    .unwrap();
    pki(&certs, &["--gen", "--type", "ed25519"], "ca.key");
    pki(
        &certs,
        &[
            "--self",
            "--ca",
            "--in",
            "ca.key",
            "--dn",
            "CN=tpmkey IKE test CA",
        ],
        "ca.pem",
    );
    let issue = |public: &str, kind: &str, dn: &str, san: &str, out: &str| {
        pki(
            &certs,
            &[
                "--issue", "--cacert", "ca.pem", "--cakey", "ca.key", "--in", public, "--type",
                kind, "--dn", dn, "--san", san,
            ],
            out,
        );
    };
    for (case, spki) in CASES.iter().zip([&keys.ec_spki, &keys.rsa_spki]) {
        let public = public_key_files(&certs, case.name, spki);
        issue(
            public.to_str().unwrap(),
            "pub",
            &format!("CN=tpmkey IKE gateway {}", case.name),
            &case.gw_id(),
            &format!("gw-{}.pem", case.name),
        );
    }
    pki(&certs, &["--gen", "--type", "ed25519"], "peer.key");
    issue(
        "peer.key",
        "priv",
        "CN=tpmkey IKE peer",
        "peer.test",
        "peer.pem",
    );

    // Configurations: credential folders next to each swanctl.conf.
    let gw_dir = dir.0.join("gw");
    let peer_dir = dir.0.join("peer");
    for (side, files) in [
        (
            &gw_dir,
            &[
                ("ca.pem", "x509ca"),
                ("gw-ec.pem", "x509"),
                ("gw-rsa.pem", "x509"),
            ][..],
        ),
        (
            &peer_dir,
            &[
                ("ca.pem", "x509ca"),
                ("peer.pem", "x509"),
                ("peer.key", "private"),
            ][..],
        ),
    ] {
        for (file, folder) in files {
            std::fs::create_dir_all(side.join(folder)).unwrap();
            std::fs::copy(certs.join(file), side.join(folder).join(file)).unwrap();
        }
    }
    let common_plugins = "random nonce aes sha1 sha2 hmac kdf gmp curve25519 pem pkcs1 pkcs8 \
                          x509 pubkey constraints kernel-libipsec kernel-netlink socket-default \
                          vici";
    std::fs::create_dir_all(&gw_dir).unwrap();
    strongswan_conf(
        &gw_dir,
        &format!("{common_plugins} pkcs11 openssl"),
        &format!(
            "    pkcs11 {{\n      modules {{\n        tpmkey {{\n          path = {}\n        \
             }}\n      }}\n    }}\n",
            module_path().display()
        ),
    );
    strongswan_conf(&peer_dir, &format!("{common_plugins} openssl"), "");
    let mut gw_conf = String::from("connections {\n");
    let mut peer_conf = String::from("connections {\n");
    let mut secrets = String::from("secrets {\n");
    for case in &CASES {
        let gw_cert = format!("gw-{}.pem", case.name);
        let gw_id = case.gw_id();
        let gw = End {
            addr: GW_ADDR,
            id: &gw_id,
            cert: &gw_cert,
            ts: net(case.gw_inner),
        };
        let peer = End {
            addr: PEER_ADDR,
            id: "peer.test",
            cert: "peer.pem",
            ts: net(case.peer_inner),
        };
        gw_conf += &connection(case.name, &gw, &peer);
        peer_conf += &connection(case.name, &peer, &gw);
        let handle: String = case.id.iter().map(|b| format!("{b:02x}")).collect();
        secrets += &format!(
            "  token-{} {{\n    module = tpmkey\n    handle = {handle}\n    pin = {USER_PIN}\n  \
             }}\n",
            case.name
        );
    }
    std::fs::write(
        gw_dir.join("swanctl.conf"),
        gw_conf + "}\n" + &secrets + "}\n",
    )
    .unwrap();
    std::fs::write(peer_dir.join("swanctl.conf"), peer_conf + "}\n").unwrap();

    // The network, the TPM's way into the gateway's namespace, the daemons.
    let ns = Namespaces::create();
    let bridge = UnixBridge::start(dir.0.join("tpm.sock"), env.swtpm.port());
    let mut gw_env = env.vars();
    gw_env.retain(|(k, _)| k != "TPMKEY_TCTI");
    gw_env.push(("TPMKEY_TCTI".into(), bridge.tcti()));
    let gw = Charon::start("gateway", &ns.gw, &gw_dir, &gw_env);
    let peer = Charon::start("peer", &ns.peer, &peer_dir, &[]);
    let logs = || format!("{}\n{}", gw.diagnostics(), peer.diagnostics());

    let load = |charon: &Charon| {
        let file = charon.dir.join("swanctl.conf");
        let loaded = charon.swanctl(&["--load-all", "--file", file.to_str().unwrap()]);
        let out = text(&loaded);
        assert!(
            loaded.status.success() && out.contains("successfully loaded 2 connections"),
            "swanctl --load-all ({}):\n{out}\n{}",
            charon.name,
            logs()
        );
        out
    };
    let gw_loaded = load(&gw);
    load(&peer);
    let gw_log = gw.log();
    for (case, kind) in CASES.iter().zip(["ECDSA", "RSA"]) {
        let token = format!("loaded {kind} private key from token");
        assert!(
            gw_log.contains(&token),
            "{}: the gateway did not log \"{token}\"; swanctl --load-all:\n{gw_loaded}\n{}",
            case.name,
            logs()
        );
    }

    // The peer starts both IKE SAs; each side logs the gateway's signature by the token.
    for case in &CASES {
        let up = peer.swanctl(&["--initiate", "--child", case.name, "--timeout", "10"]);
        assert!(
            up.status.success(),
            "{}: swanctl --initiate:\n{}\n{}",
            case.name,
            text(&up),
            logs()
        );
        let gw_id = case.gw_id();
        let scheme = case.scheme;
        // The peer verified the gateway's signature; the gateway made it with the token key.
        for (who, daemon, line) in [
            (
                "peer",
                &peer,
                format!("authentication of '{gw_id}' with {scheme} successful"),
            ),
            (
                "gateway",
                &gw,
                format!("authentication of '{gw_id}' (myself) with {scheme} successful"),
            ),
        ] {
            assert!(
                daemon.log().contains(&line),
                "{}: the {who} did not log \"{line}\":\n{}",
                case.name,
                logs()
            );
        }
    }

    let listed = peer.swanctl(&["--list-sas", "--raw"]);
    let raw = text(&listed);
    for case in &CASES {
        let (ike, child) = raw_sa(&raw, case.name)
            .unwrap_or_else(|| panic!("{}: no IKE SA on the peer:\n{raw}\n{}", case.name, logs()));
        let expected = [
            (ike, "state", "ESTABLISHED".to_string()),
            (ike, "version", "2".to_string()),
            (ike, "local-id", "peer.test".to_string()),
            (ike, "remote-id", case.gw_id()),
            (child, "state", "INSTALLED".to_string()),
            (child, "encap", "yes".to_string()),
            (child, "local-ts", format!("[{}]", net(case.peer_inner))),
            (child, "remote-ts", format!("[{}]", net(case.gw_inner))),
        ];
        for (part, key, want) in expected {
            assert_eq!(
                value(part, key),
                Some(want.as_str()),
                "{}: {key} on the peer:\n{raw}\n{}",
                case.name,
                logs()
            );
        }
    }

    // Traffic between the inner addresses: no route but the tunnel's reaches them.
    for case in &CASES {
        let ping = Command::new("ip")
            .args([
                "netns", "exec", &ns.peer, "ping", "-n", "-c", "3", "-i", "0.1",
            ])
            .args(["-W", "2", "-I", case.peer_inner, case.gw_inner])
            .output()
            .unwrap();
        assert!(
            ping.status.success() && text(&ping).contains("3 received"),
            "{}: ping through the tunnel:\n{}\n{}",
            case.name,
            text(&ping),
            logs()
        );
    }
    let raw = text(&gw.swanctl(&["--list-sas", "--raw"]));
    for case in &CASES {
        let (_, child) = raw_sa(&raw, case.name).unwrap_or_else(|| {
            panic!(
                "{}: no IKE SA on the gateway:\n{raw}\n{}",
                case.name,
                logs()
            )
        });
        for key in ["packets-in", "packets-out"] {
            let packets: u64 = value(child, key).and_then(|v| v.parse().ok()).unwrap_or(0);
            assert!(
                packets >= 3,
                "{}: {key} {packets} on the gateway's CHILD_SA:\n{raw}\n{}",
                case.name,
                logs()
            );
        }
    }

    // Daemons first, then the bridge they use, then the network.
    drop(peer);
    drop(gw);
    drop(bridge);
    drop(ns);
}
