//! Who made the TPM: vendor, model and firmware version from its fixed properties
//! (TPM_PT_MANUFACTURER through TPM_PT_FIRMWARE_VERSION_1, one TPM2_GetCapability).

use crate::error::Result;
use crate::keys::tpm_properties;

const TPM_PT_MANUFACTURER: u32 = 0x105;
const TPM_PT_VENDOR_STRING_1: u32 = 0x106;
const TPM_PT_FIRMWARE_VERSION_1: u32 = 0x10B;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmIdentity {
    /// The vendor's four-character id, e.g. "IBM", "IFX", "STM".
    pub vendor: String,
    /// The vendor strings, e.g. "SW   TPM".
    pub model: String,
    /// Major and minor of TPM_PT_FIRMWARE_VERSION_1.
    pub firmware: (u8, u8),
}

impl TpmIdentity {
    pub fn read() -> Result<TpmIdentity> {
        let props = tpm_properties(TPM_PT_MANUFACTURER, 7)?;
        let value = |p: u32| props.iter().find(|(k, _)| *k == p).map(|(_, v)| *v);
        let text = |first: u32, n: u32| -> String {
            let bytes: Vec<u8> = (first..first + n)
                .filter_map(value)
                .flat_map(u32::to_be_bytes)
                .filter(|b| b.is_ascii_graphic() || *b == b' ')
                .collect();
            String::from_utf8_lossy(&bytes).trim().to_string()
        };
        let fw = value(TPM_PT_FIRMWARE_VERSION_1).unwrap_or(0);
        Ok(TpmIdentity {
            vendor: text(TPM_PT_MANUFACTURER, 1),
            model: text(TPM_PT_VENDOR_STRING_1, 4),
            firmware: ((fw >> 16) as u8, fw as u8),
        })
    }
}
