//! Options every subcommand takes: which TPM and which configuration, the same sources
//! the provider and the PKCS#11 module read.

use clap::Args;

#[derive(Debug, Args)]
pub struct Options {
    /// TCTI of the TPM (default: TPMKEY_TCTI, then `tcti` in the configuration file)
    #[arg(long, global = true, value_name = "TCTI")]
    pub tcti: Option<String>,
    /// Configuration file (default: TPMKEY_CONF, then /etc/tpmkey/tpmkey.conf)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<String>,
}

impl Options {
    pub fn apply(&self) -> tpmkey::Result<()> {
        if let Some(c) = &self.config {
            // Read by the core's configuration loader; set before any thread starts.
            std::env::set_var("TPMKEY_CONF", c);
        }
        let mut explicit: Vec<(&str, &str)> = Vec::new();
        if let Some(t) = &self.tcti {
            explicit.push(("tcti", t));
        }
        tpmkey::connection::configure(&explicit).map(|_| ())
    }
}
