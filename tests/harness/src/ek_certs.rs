//! A swtpm provisioned as a manufacturer would: endorsement key certificates in NV, issued
//! by a private local CA (`swtpm_setup --create-ek-cert --create-platform-cert` with
//! `swtpm_localca`), plus the ECC P-256 EK certificate at 0x01c0000a that swtpm_setup does
//! not write (it writes P-384 at 0x01c00016).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{find_program, TempDir};
use crate::{run, Swtpm, TpmEndpoint};

/// TCG EK Credential Profile NV indices.
pub const EK_CERT_RSA2048: u32 = 0x01c0_0002;
pub const EK_CERT_ECC_P256: u32 = 0x01c0_000a;
pub const EK_CERT_RSA2048_HIGH: u32 = 0x01c0_0012;
pub const EK_CERT_ECC_P256_HIGH: u32 = 0x01c0_0014;
pub const EK_CERT_ECC_P384: u32 = 0x01c0_0016;
pub const PLATFORM_CERT: u32 = 0x01c0_8000;

/// What swtpm_localca passes for the TPM it certifies (swtpm 0.7's defaults).
const TPM_IDENTITY: [&str; 12] = [
    "--tpm-spec-family",
    "2.0",
    "--tpm-spec-level",
    "0",
    "--tpm-spec-revision",
    "164",
    "--tpm-manufacturer",
    "id:00001014",
    "--tpm-model",
    "swtpm",
    "--tpm-version",
    "id:20191023",
];

/// The private CA that issued a provisioned swtpm's EK certificates: a root and the
/// intermediate ("swtpm-localca") that signs them. Files live as long as this value.
#[derive(Debug)]
pub struct EkCa {
    dir: TempDir,
}

impl EkCa {
    fn new() -> EkCa {
        let ca = EkCa {
            dir: TempDir::new("ekca"),
        };
        let d = ca.dir.path();
        fs::create_dir(d.join("state")).unwrap_or_else(|e| panic!("tpmkey-testenv: {e}"));
        write(
            &ca.config(),
            &format!(
                "statedir = {s}\nsigningkey = {s}/signkey.pem\nissuercert = {s}/issuercert.pem\n\
                 certserial = {s}/certserial\n",
                s = d.join("state").display()
            ),
        );
        write(
            &ca.options(),
            "--platform-manufacturer tpmkey\n--platform-version 2.1\n--platform-model swtpm\n",
        );
        write(
            &d.join("setup.conf"),
            &format!(
                "create_certs_tool = {}\ncreate_certs_tool_config = {}\n\
                 create_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
                find_program("swtpm_localca").display(),
                ca.config().display(),
                ca.options().display()
            ),
        );
        ca
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("localca.conf")
    }

    fn options(&self) -> PathBuf {
        self.dir.path().join("localca.options")
    }

    /// The self-signed root (PEM): the trust anchor a verifier is given.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.path().join("state/swtpm-localca-rootca-cert.pem")
    }

    /// The intermediate that signs EK certificates (PEM).
    pub fn issuer_cert(&self) -> PathBuf {
        self.dir.path().join("state/issuercert.pem")
    }

    /// The intermediate's private key (PEM), for tests that issue certificates as the CA
    /// does (e.g. an AK certificate after credential activation).
    pub fn issuer_key(&self) -> PathBuf {
        self.dir.path().join("state/signkey.pem")
    }

    /// A directory for a test's own files beside the CA's.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `swtpm_setup` on `state`: EKs (RSA 2048, ECC P-384), their certificates and the
    /// platform certificate, PCR bank SHA-256 only.
    fn manufacture(&self, state: &Path) -> Result<(), String> {
        let out = Command::new(find_program("swtpm_setup"))
            .arg("--tpm2")
            .arg("--tpm-state")
            .arg(state)
            .args([
                "--create-ek-cert",
                "--create-platform-cert",
                "--ecc",
                "--overwrite",
            ])
            .arg("--config")
            .arg(self.dir.path().join("setup.conf"))
            .output()
            .map_err(|e| format!("cannot run swtpm_setup: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "swtpm_setup failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Issues the ECC P-256 EK certificate (TCG default template L-2) and stores it at
    /// 0x01c0000a with the attributes swtpm_setup gives its own certificates.
    fn add_p256_certificate(&self, tpm: &Swtpm) {
        let d = self.dir.path();
        let public = d.join("ek256.pub");
        let context = d.join("ek256.ctx");
        tpm.tpm2_tools_ok([
            "tpm2_createek".as_ref(),
            "-G".as_ref(),
            "ecc".as_ref(),
            "-c".as_ref(),
            context.as_os_str(),
            "-u".as_ref(),
            public.as_os_str(),
        ]);
        let blob = fs::read(&public).unwrap_or_else(|e| panic!("tpmkey-testenv: {e}"));
        // TPM2B_PUBLIC ends with unique = TPM2B x (32 bytes) || TPM2B y (32 bytes).
        let tail = blob
            .len()
            .checked_sub(68)
            .map(|at| &blob[at..])
            .unwrap_or_else(|| panic!("tpmkey-testenv: EK public area of {} bytes", blob.len()));
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let (x, y) = (hex(&tail[2..34]), hex(&tail[36..68]));
        self.issue_and_store(
            tpm,
            "ek256",
            &format!("x={x},y={y},id=secp256r1"),
            EK_CERT_ECC_P256,
        );
    }

    /// Derives the high-range EKs RSA 2048 (template H-1) and ECC P-256 (H-2), issues
    /// their certificates and stores them at 0x01c00012 and 0x01c00014 (swtpm_setup writes
    /// only the P-384 one of the high range, at 0x01c00016).
    pub fn add_high_range_certificates(&self, tpm: &Swtpm) {
        // H-1 and H-2: userWithAuth and adminWithPolicy, authPolicy PolicyB (SHA-256),
        // AES-128-CFB, unique empty (tpm2_createprimary's default).
        let policy = self.dir.path().join("ek-policy-b-sha256");
        let policy_b = "ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0";
        let bytes = (0..policy_b.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&policy_b[i..i + 2], 16).unwrap_or_default())
            .collect::<Vec<u8>>();
        write_bytes(&policy, &bytes);
        let attributes =
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|adminwithpolicy|restricted|decrypt";
        for (algorithm, name, index) in [
            ("rsa2048:null:aes128cfb", "ekh1", EK_CERT_RSA2048_HIGH),
            ("ecc256:null:aes128cfb", "ekh2", EK_CERT_ECC_P256_HIGH),
        ] {
            let context = self.dir.path().join(format!("{name}.ctx"));
            let out = tpm.tpm2_tools_ok([
                "tpm2_createprimary".as_ref(),
                "-C".as_ref(),
                "e".as_ref(),
                "-G".as_ref(),
                algorithm.as_ref(),
                "-g".as_ref(),
                "sha256".as_ref(),
                "-a".as_ref(),
                attributes.as_ref(),
                "-L".as_ref(),
                policy.as_os_str(),
                "-c".as_ref(),
                context.as_os_str(),
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_else(|| panic!("tpmkey-testenv: no {key} in:\n{text}"))
            };
            let ek = if name == "ekh1" {
                field("rsa:")
            } else {
                format!("x={},y={},id=secp256r1", field("x:"), field("y:"))
            };
            tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
            self.issue_and_store(tpm, name, &ek, index);
        }
    }

    /// Issues an EK certificate for `ek` (swtpm_localca's `--ek` form) and stores it at
    /// `index` with the attributes swtpm_setup gives its own certificates.
    fn issue_and_store(&self, tpm: &Swtpm, name: &str, ek: &str, index: u32) {
        let certs = self.dir.path().join(name);
        fs::create_dir_all(&certs).unwrap_or_else(|e| panic!("tpmkey-testenv: {e}"));
        run(Command::new(find_program("swtpm_localca"))
            .args(["--type", "ek", "--ek"])
            .arg(ek)
            .arg("--dir")
            .arg(&certs)
            .args(TPM_IDENTITY)
            .arg("--tpm2")
            .arg("--configfile")
            .arg(self.config())
            .arg("--optsfile")
            .arg(self.options()));
        let cert = certs.join("ek.cert");
        let size = fs::metadata(&cert)
            .unwrap_or_else(|e| panic!("tpmkey-testenv: {}: {e}", cert.display()))
            .len();
        let index = format!("0x{index:08x}");
        tpm.tpm2_tools_ok([
            "tpm2_nvdefine",
            &index,
            "-C",
            "p",
            "-s",
            &size.to_string(),
            "-a",
            "ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate",
        ]);
        tpm.tpm2_tools_ok([
            "tpm2_nvwrite".as_ref(),
            index.as_ref(),
            "-C".as_ref(),
            "p".as_ref(),
            "-i".as_ref(),
            cert.as_os_str(),
        ]);
    }
}

fn write_bytes(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes)
        .unwrap_or_else(|e| panic!("tpmkey-testenv: cannot write {}: {e}", path.display()));
}

fn write(path: &Path, text: &str) {
    fs::write(path, text)
        .unwrap_or_else(|e| panic!("tpmkey-testenv: cannot write {}: {e}", path.display()));
}

impl Swtpm {
    /// A fresh swtpm with EK certificates in NV (RSA 2048 at 0x01c00002, ECC P-256 at
    /// 0x01c0000a, ECC P-384 at 0x01c00016, platform certificate at 0x01c08000), all
    /// chaining to the returned CA; the RSA and P-384 EKs are also persistent at
    /// 0x81010001 and 0x81010016. Takes about 1.5 s more than [`Swtpm::start`].
    pub fn start_with_ek_certs() -> (Swtpm, EkCa) {
        let ca = EkCa::new();
        let tpm = Swtpm::start_prepared(|state| ca.manufacture(state));
        ca.add_p256_certificate(&tpm);
        (tpm, ca)
    }
}
