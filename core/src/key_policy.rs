//! What a new key or sealed object is bound to, from the options users give (`pcr:`,
//! `pcr-values:`, `policy-signer:`, an expiry), as the statements of its `policy [1]`. The
//! provider's `-pkeyopt`s and the `tpmkey` command both build their policies here.

use std::collections::BTreeMap;

use crate::connection::{with_link, Need};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::hex::unhex;
use crate::policy::{
    authorize_statement, PcrSelection, PolicyCounterTimer, PolicyPcr, PolicyRefDialect, SignerKey,
    Statement,
};

/// The TPM's clock and boot counter (TPMS_TIME_INFO of TPM2_ReadClock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpmClock {
    /// Milliseconds the TPM has been powered since its clock was last set or cleared; it
    /// never goes back.
    pub clock_ms: u64,
    /// TPM resets (boots) since the last TPM2_Clear.
    pub reset_count: u32,
}

/// The options of a policy-bound key.
#[derive(Clone, Debug, Default)]
pub struct PolicyRequest {
    /// Bind to these PCRs' current values (`pcr:sha256:7,16`).
    pub pcrs: Option<PcrSelection>,
    /// Bind to these values instead (`pcr-values:FILE`): supplied or predicted.
    pub pcr_values: Option<(PcrSelection, Vec<Vec<u8>>)>,
    /// Usable under any policy this key signs (`policy-signer:pub.pem`).
    pub signer: Option<SignerKey>,
    /// policyRef of the signed policies: a per-key nonce (default) or empty (systemd).
    pub policy_ref: Option<PolicyRefDialect>,
    /// Usable until the TPM's clock has advanced this many milliseconds.
    pub expires_ms: Option<u64>,
    /// Usable for this many more boots (TPM resets).
    pub boots: Option<u32>,
}

impl PolicyRequest {
    pub fn is_empty(&self) -> bool {
        self.pcrs.is_none()
            && self.pcr_values.is_none()
            && self.signer.is_none()
            && self.expires_ms.is_none()
            && self.boots.is_none()
    }

    /// The statements, reading the TPM for current PCR values and its clock when needed. A
    /// signer comes first (PolicyAuthorize must open `policy [1]`), then PCRs, then limits.
    pub fn statements(&self) -> Result<Vec<Statement>> {
        let mut out = Vec::new();
        if let Some(signer) = &self.signer {
            let policy_ref = self
                .policy_ref
                .unwrap_or(PolicyRefDialect::EngineNonce)
                .new_policy_ref();
            out.push(authorize_statement(signer, &policy_ref));
        }
        match (&self.pcrs, &self.pcr_values) {
            (Some(sel), Some((given, _))) if sel != given => {
                return Err(Error::BadInput(format!(
                    "pcr:{sel} and the PCR values given ({given}) name different PCRs"
                )))
            }
            (_, Some((sel, values))) => {
                out.push(Statement::Pcr(PolicyPcr::from_values(sel.clone(), values)?))
            }
            (Some(sel), None) => {
                let values = crate::keys::read_pcrs(sel)?;
                out.push(Statement::Pcr(PolicyPcr::from_values(
                    sel.clone(),
                    &values,
                )?));
            }
            (None, None) => {}
        }
        if self.expires_ms.is_some() || self.boots.is_some() {
            let now = read_clock()?;
            out.extend(limits(now, self.expires_ms, self.boots)?);
        }
        Ok(out)
    }
}

/// PolicyCounterTimer statements for an expiry `expires_ms` after `now` and at most `boots`
/// more TPM resets.
pub fn limits(
    now: TpmClock,
    expires_ms: Option<u64>,
    boots: Option<u32>,
) -> Result<Vec<Statement>> {
    let mut out = Vec::new();
    if let Some(ms) = expires_ms {
        let until = now
            .clock_ms
            .checked_add(ms)
            .ok_or_else(|| Error::BadInput("expiry too far in the future".into()))?;
        out.push(Statement::CounterTimer(PolicyCounterTimer::clock_before(
            until,
        )));
    }
    if let Some(n) = boots {
        let last = now
            .reset_count
            .checked_add(n)
            .ok_or_else(|| Error::BadInput("too many boots".into()))?;
        out.push(Statement::CounterTimer(
            PolicyCounterTimer::reset_count_at_most(last),
        ));
    }
    Ok(out)
}

/// TPM2_ReadClock.
pub fn read_clock() -> Result<TpmClock> {
    with_link(|link| link.run(Need::Nothing, |tpm, _| tpm.read_clock()))
}

/// Parses a duration as users write it: `90d`, `12h`, `30m`, `45s`, `500ms`; into ms.
pub fn parse_duration(s: &str) -> Result<u64> {
    let bad = || {
        Error::BadInput(format!(
            "\"{s}\" is not a duration (e.g. 90d, 12h, 30m, 45s)"
        ))
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

/// PCR values from a file: lines `sha256:16=HEX` (also `16=HEX`, SHA-256), or the YAML
/// `tpm2_pcrread` prints (`sha256:` then `  16: 0xHEX`). The selection is what the file
/// names; values come back in selection order.
pub fn parse_pcr_values(text: &str, what: &str) -> Result<(PcrSelection, Vec<Vec<u8>>)> {
    let mut values: BTreeMap<(u16, u8), (Hash, Vec<u8>)> = BTreeMap::new();
    let mut bank: Option<Hash> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{what}, line {}", n + 1);
        let bad = |m: &str| Error::BadInput(format!("{}: {m}", at()));
        if let Some(name) = line.strip_suffix(':') {
            bank = Some(Hash::from_name(name).map_err(|e| bad(&e.to_string()))?);
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some(kv) => kv,
            None => line
                .split_once(':')
                .ok_or_else(|| bad("expected bank:index=HEX"))?,
        };
        let (hash, index) = match key.trim().split_once(':') {
            Some((b, i)) => (
                Hash::from_name(b.trim()).map_err(|e| bad(&e.to_string()))?,
                i,
            ),
            None => (bank.unwrap_or(Hash::Sha256), key),
        };
        let index: u8 = index
            .trim()
            .parse()
            .ok()
            .filter(|i| *i < 24)
            .ok_or_else(|| bad(&format!("\"{}\" is not a PCR index (0-23)", index.trim())))?;
        let hex = value.trim();
        let hex = hex
            .strip_prefix("0x")
            .or(hex.strip_prefix("0X"))
            .unwrap_or(hex);
        let value = unhex(hex).ok_or_else(|| bad("the value is not hex"))?;
        if value.len() != hash.len() {
            return Err(bad(&format!(
                "a {} PCR value is {} bytes, not {}",
                hash.name(),
                hash.len(),
                value.len()
            )));
        }
        values.insert((hash.tpm_alg(), index), (hash, value));
    }
    if values.is_empty() {
        return Err(Error::BadInput(format!("{what}: no PCR values")));
    }
    let mut by_bank: BTreeMap<u16, (Hash, Vec<u8>)> = BTreeMap::new();
    for ((alg, index), (hash, _)) in &values {
        by_bank
            .entry(*alg)
            .or_insert((*hash, Vec::new()))
            .1
            .push(*index);
    }
    let banks = by_bank
        .values()
        .map(|(hash, indices)| PcrSelection::new(*hash, indices))
        .collect::<Result<Vec<_>>>()?;
    let selection =
        PcrSelection::from_banks(banks.iter().flat_map(|b| b.banks().to_vec()).collect())?;
    let ordered = selection
        .pcrs()
        .iter()
        .map(|(hash, index)| {
            values
                .get(&(hash.tpm_alg(), *index))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Error::BadInput(format!("{what}: PCR {index} missing")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((selection, ordered))
}

/// The PCR values now, as [`parse_pcr_values`] reads them back (`tpmkey pcr read`).
pub fn format_pcr_values(selection: &PcrSelection, values: &[Vec<u8>]) -> String {
    selection
        .pcrs()
        .iter()
        .zip(values)
        .map(|((hash, index), v)| {
            format!(
                "{}:{index}={}\n",
                hash.name().to_ascii_lowercase(),
                crate::hex::hex(v)
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pcr_value_files_in_both_forms() {
        let v = "ab".repeat(32);
        let (sel, vals) = parse_pcr_values(
            &format!("sha256:16={v}\n# comment\n7=0x{}\n", "00".repeat(32)),
            "f",
        )
        .unwrap();
        assert_eq!(sel.to_string(), "sha256:7,16");
        assert_eq!(vals[1], vec![0xab; 32]);
        let yaml = format!("  sha256:\n    16: 0x{}\n", v.to_uppercase());
        let (sel, _) = parse_pcr_values(&yaml, "f").unwrap();
        assert_eq!(sel.to_string(), "sha256:16");
        for bad in ["sha256:16=abcd", "sha256:24=00", "sha999:1=00", "", "16=zz"] {
            assert!(parse_pcr_values(bad, "f").is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500);
        for bad in ["", "d", "12", "5y", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
