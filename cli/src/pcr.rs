//! `tpmkey pcr read`: the PCR values now, in the form `--pcr-values` and `tpmkey policy
//! sign` read back.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};

use tpmkey::key_policy::format_pcr_values;
use tpmkey::policy::PcrSelection;
use tpmkey::Result;

use crate::io;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: PcrCommand,
}

#[derive(Debug, Subcommand)]
enum PcrCommand {
    /// Print PCR values as `bank:index=HEX` lines
    #[command(after_help = "Examples:\n  \
        tpmkey pcr read sha256:7,11,16\n  \
        tpmkey pcr read sha256:16 -o state.pcrs && tpmkey keygen --pcr-values state.pcrs -o k.key")]
    Read {
        /// Which PCRs
        #[arg(default_value = "sha256:0-23")]
        selection: String,
        /// Write them to FILE instead of standard output
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        PcrCommand::Read { selection, out } => {
            let selection = PcrSelection::parse(&selection)?;
            let values = tpmkey::keys::read_pcrs(&selection)?;
            let text = format_pcr_values(&selection, &values);
            io::write_output(out.as_deref(), text.as_bytes())
        }
    }
}
