//! Storage primary keys made with tpm2-tools, the way an administrator (or another TPM
//! stack) makes them: transient with a saved context, or persistent at a handle. There is
//! no resource manager between the tools and swtpm, so what they load stays loaded until
//! flushed.

use std::path::Path;

use crate::{Swtpm, TempDir, TpmEndpoint};

/// The attributes of tpmkey's own storage key (the TCG ECC P-256 SRK template): the
/// tpm2-tools default plus `noda`.
pub const SRK_ATTRIBUTES: &str =
    "restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda";

/// `tpm2_createprimary -C o -g sha256 -G ecc256:null:aes128cfb`, with these attributes and
/// this authorization value.
#[derive(Clone, Copy, Debug)]
pub struct StoragePrimary<'a> {
    /// `-a`; `None` keeps tpm2-tools' default (the SRK template without `noda`).
    pub attributes: Option<&'a str>,
    /// `-p`; `None` is an empty authorization value.
    pub auth: Option<&'a str>,
}

impl StoragePrimary<'static> {
    /// tpm2-tools' default storage primary (no `noda`), as `tpm2_createprimary -C o` makes it.
    pub const TOOLS_DEFAULT: StoragePrimary<'static> = StoragePrimary {
        attributes: None,
        auth: None,
    };

    /// tpmkey's own storage key template ([`SRK_ATTRIBUTES`]).
    pub const SRK: StoragePrimary<'static> = StoragePrimary {
        attributes: Some(SRK_ATTRIBUTES),
        auth: None,
    };
}

impl StoragePrimary<'_> {
    /// Creates the primary with its context saved in `ctx`; it stays loaded.
    pub fn create(&self, tpm: &impl TpmEndpoint, ctx: &Path) {
        let ctx = ctx.to_str().unwrap_or_else(|| {
            panic!(
                "tpmkey-testenv: context path {} is not UTF-8",
                ctx.display()
            )
        });
        let mut args = vec![
            "tpm2_createprimary",
            "-C",
            "o",
            "-g",
            "sha256",
            "-G",
            "ecc256:null:aes128cfb",
        ];
        if let Some(attributes) = self.attributes {
            args.extend(["-a", attributes]);
        }
        if let Some(auth) = self.auth {
            args.extend(["-p", auth]);
        }
        args.extend(["-c", ctx]);
        tpm.tpm2_tools_ok(args);
    }

    /// Creates the primary and makes it persistent at `handle` (`0x81......`); the
    /// transient copy is flushed.
    pub fn persist(&self, tpm: &Swtpm, handle: &str) {
        let dir = TempDir::new("srk");
        let ctx = dir.path().join("primary.ctx");
        self.create(tpm, &ctx);
        let ctx = ctx.to_string_lossy();
        tpm.tpm2_tools_ok(["tpm2_evictcontrol", "-C", "o", "-c", &ctx, handle]);
        tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    }
}
