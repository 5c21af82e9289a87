//! The token store against a real swtpm: tokens, TPM-checked PINs, objects written
//! atomically, leftovers of killed writers, damaged records.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use tpmkey::store::{Attributes, Record, Role, Store};
use tpmkey::{KeySpec, TpmKey};
use tpmkey_testenv::{Fault, FaultPlan};

struct TempStore(PathBuf);

impl TempStore {
    fn new() -> TempStore {
        let dir = std::env::temp_dir().join(format!(
            "tpmkey-store-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        TempStore(dir)
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn attrs(pairs: &[(u64, &[u8])]) -> Attributes {
    pairs.iter().map(|(k, v)| (*k, v.to_vec())).collect()
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn token_pins_are_checked_by_the_tpm() {
    let _tpm = common::tpm();
    let tmp = TempStore::new();
    let store = Store::new(&tmp.0);
    assert!(store.serials().unwrap().is_empty());
    let token = store.create_token("my token", b"so-pin").unwrap();
    assert_eq!(store.serials().unwrap(), vec![token.serial().to_string()]);
    assert_eq!(mode(token.dir()), 0o700);
    assert_eq!(mode(&token.dir().join("so-pin.tss")), 0o600);

    let so = token.login(Role::SecurityOfficer, b"so-pin").unwrap();
    assert!(token
        .login(Role::SecurityOfficer, b"wrong")
        .unwrap_err()
        .is_bad_auth());
    assert!(!token.user_pin_initialized());
    token.init_user_pin(&so, b"1234").unwrap();
    assert!(token.user_pin_initialized());
    let user = token.login(Role::User, b"1234").unwrap();
    assert_eq!(*so.object_auth("ab"), *user.object_auth("ab"));
    assert_ne!(*so.object_auth("ab"), *user.object_auth("cd"));

    token.change_pin(Role::User, b"1234", b"5678").unwrap();
    assert!(token.login(Role::User, b"1234").unwrap_err().is_bad_auth());
    let again = store.open(token.serial()).unwrap();
    assert_eq!(again.label(), "my token");
    // The token records the TPM it was made on (swtpm: vendor "IBM").
    let (vendor, model) = again.tpm_vendor_model().unwrap();
    assert_eq!(vendor, "IBM");
    assert!(!model.is_empty());
    assert_eq!(
        *again.login(Role::User, b"5678").unwrap().object_auth("ab"),
        *so.object_auth("ab")
    );
    assert!(token
        .change_pin(Role::User, b"bad", b"x")
        .unwrap_err()
        .is_bad_auth());

    // A token made before tpmkey recorded the TPM still opens.
    let info = token.dir().join("token");
    let text = std::fs::read_to_string(&info).unwrap();
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("tpm-"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&info, old).unwrap();
    let old = store.open(token.serial()).unwrap();
    assert_eq!(old.label(), "my token");
    assert!(old.tpm_vendor_model().is_none());
}

#[test]
fn objects_commit_by_record_and_survive_damage() {
    let _tpm = common::tpm();
    let tmp = TempStore::new();
    let store = Store::new(&tmp.0);
    let mut token = store.create_token("t", b"so").unwrap();
    let secret = token.login(Role::SecurityOfficer, b"so").unwrap();

    let uid = token.new_uid();
    let key =
        TpmKey::generate_with_secret(KeySpec::EcP256, &secret.object_auth(&uid), None).unwrap();
    let record = Record {
        parts: vec![attrs(&[(3, b"pub")]), attrs(&[(3, b"priv")])],
        ..Record::default()
    };
    token
        .add(&uid, &record, key.key_file().as_ref(), None)
        .unwrap();
    let objects = token.objects().unwrap();
    assert_eq!(objects.len(), 1);
    assert!(objects.records()[0].1.has_key);
    assert_eq!(objects.records()[0].1.parts[1][&3], b"priv");
    // The key file is a TSS2 PRIVATE KEY the provider can load.
    let file = token.key_file(&uid).unwrap();
    let loaded = TpmKey::from_key_file(&file, Some(&secret.object_auth(&uid))).unwrap();
    loaded
        .sign(
            tpmkey::SignScheme::Ecdsa(tpmkey::hash::Hash::Sha256),
            &[1u8; 32],
        )
        .unwrap();

    // Another process's view sees the change through the generation counter.
    let mut other = store.open(token.serial()).unwrap();
    assert_eq!(other.objects().unwrap().len(), 1);
    let changed = Record {
        parts: vec![attrs(&[(3, b"pub2")]), attrs(&[(3, b"priv")])],
        has_key: true,
        has_sealed: false,
    };
    token.update(&uid, &changed).unwrap();
    assert_eq!(other.object(&uid).unwrap().unwrap().parts[0][&3], b"pub2");

    // A killed writer's leftovers: a key file without record and a temp file.
    let objects_dir = token.dir().join("objects");
    std::fs::write(objects_dir.join("00ff.key"), b"half").unwrap();
    std::fs::write(objects_dir.join(".tmp-dead"), b"half").unwrap();
    // A damaged record is skipped, not half-used.
    std::fs::write(objects_dir.join("0abc.obj"), b"garbage").unwrap();
    // Leftovers are cleared once per process and token, at its first write.
    let mut token = store.open(token.serial()).unwrap();
    let uid2 = token.new_uid();
    let sealed =
        tpmkey::sealed::SealedData::seal(b"v", &secret.object_auth(&uid2), false, None).unwrap();
    token
        .add(
            &uid2,
            &Record {
                parts: vec![attrs(&[(0, b"d")])],
                ..Record::default()
            },
            None,
            Some(&sealed.into()),
        )
        .unwrap();
    assert!(!objects_dir.join("00ff.key").exists());
    assert!(!objects_dir.join(".tmp-dead").exists());
    let uids: Vec<String> = token
        .objects()
        .unwrap()
        .records()
        .iter()
        .map(|(u, _)| u.clone())
        .collect();
    assert_eq!(uids.len(), 2, "{uids:?}");
    assert_eq!(
        token
            .sealed(&uid2)
            .unwrap()
            .unseal(&secret.object_auth(&uid2), &[])
            .unwrap()
            .as_slice(),
        b"v"
    );
    // Dropping the key from the record removes its key file.
    token
        .update(
            &uid,
            &Record {
                has_key: false,
                ..changed
            },
        )
        .unwrap();
    assert!(token.key_file(&uid).is_err());
    token.remove(&uid).unwrap();
    assert!(other.object(&uid).unwrap().is_none());
    assert!(!objects_dir.join(format!("{uid}.key")).exists());
    assert!(token.key_file("../x").is_err());

    // Re-initialising needs the SO PIN and empties the token.
    assert!(token.reinitialize(b"bad", "t2").unwrap_err().is_bad_auth());
    token.reinitialize(b"so", "t2").unwrap();
    assert!(token.objects().unwrap().is_empty());
    assert_eq!(token.label(), "t2");
}

#[test]
fn platform_policy_is_recorded_kept_by_reinitialisation_and_checked() {
    let _tpm = common::tpm();
    let tmp = TempStore::new();
    let store = Store::new(&tmp.0);
    let sel = tpmkey::policy::PcrSelection::parse("sha256:7,16").unwrap();
    let values = tpmkey::keys::read_pcrs(&sel).unwrap();
    let policy = vec![tpmkey::policy::Statement::Pcr(
        tpmkey::policy::PolicyPcr::from_values(sel, &values).unwrap(),
    )];
    let mut token = store
        .create_token_with_policy("bound", b"so", Some(&policy))
        .unwrap();
    let read = |t: &tpmkey::store::Token| {
        tpmkey::policy::policy_digest(&t.platform_policy().unwrap().unwrap()).unwrap()
    };
    let digest = tpmkey::policy::policy_digest(&policy).unwrap();
    assert_eq!(read(&token), digest);
    let serial = token.serial().to_string();
    assert_eq!(read(&store.open(&serial).unwrap()), digest);
    token.reinitialize(b"so", "again").unwrap();
    assert_eq!(
        read(&token),
        digest,
        "C_InitToken keeps the platform policy"
    );
    assert_eq!(read(&store.open(&serial).unwrap()), digest);

    let plain = store.create_token("plain", b"so").unwrap();
    assert!(plain.platform_policy().unwrap().is_none());
    assert!(store
        .create_token_with_policy("empty", b"so", Some(&[]))
        .is_err());

    // A damaged policy line is a damaged store, named, never an unbound token.
    let info = token.dir().join("token");
    let text = std::fs::read_to_string(&info).unwrap();
    let damaged: String = text
        .lines()
        .map(|l| match l.strip_prefix("platform-policy=") {
            Some(hex) => format!("platform-policy={}\n", &hex[..hex.len() - 4]),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&info, damaged).unwrap();
    let e = store.open(&serial).unwrap().platform_policy().unwrap_err();
    assert!(e.is_damaged_store(), "{e}");
    assert!(e.to_string().contains("platform-policy"), "{e}");
}

/// A PIN change the TPM does not complete leaves the old PIN working: the new protection
/// is made before the old one is deleted. Then a change that completes deletes the old
/// indices (as many NV indices as before).
#[test]
fn a_pin_change_that_fails_keeps_the_old_pin() {
    let (tpm, tap) = common::tapped_tpm(&[]);
    let tmp = TempStore::new();
    let store = Store::new(&tmp.0);
    let token = store.create_token("change", b"so-pin").unwrap();
    let so = token.login(Role::SecurityOfficer, b"so-pin").unwrap();
    token.init_user_pin(&so, b"1234").unwrap();
    let indices = || tpmkey_testenv::owner_nv_indices(&tpm.swtpm).len();
    let before = indices();
    const NV_DEFINE_SPACE: u32 = 0x12A;
    const NV_WRITE: u32 = 0x137;
    const TPM_RC_FAILURE: u32 = 0x101;
    for (code, skip) in [(NV_DEFINE_SPACE, 0), (NV_DEFINE_SPACE, 1), (NV_WRITE, 0)] {
        tap.inject(FaultPlan::on(code, skip, Fault::Answer(TPM_RC_FAILURE)));
        token
            .change_pin(Role::User, b"1234", b"5678")
            .expect_err("the TPM failed the change");
        tap.stop_injecting();
        token.login(Role::User, b"1234").unwrap();
        assert_eq!(indices(), before, "fault at 0x{code:x} (skip {skip})");
    }
    token.change_pin(Role::User, b"1234", b"5678").unwrap();
    token.login(Role::User, b"5678").unwrap();
    assert_eq!(indices(), before, "the old PIN's indices are gone");
    let _ = so;
}
