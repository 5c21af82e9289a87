//! The TPM's dictionary-attack state in words (TPM_PT_LOCKOUT_COUNTER through
//! TPM_PT_LOCKOUT_RECOVERY, one TPM2_GetCapability): how many failures it counts, its limit,
//! and how a locked-out TPM recovers. The TPM reports no remaining time, only that it forgets
//! one failure every `interval` seconds; the advice is derived from that.

use crate::error::Result;

const TPM_PT_LOCKOUT_COUNTER: u32 = 0x20E;
const TPM_PT_MAX_AUTH_FAIL: u32 = 0x20F;
const TPM_PT_LOCKOUT_INTERVAL: u32 = 0x210;
const TPM_PT_LOCKOUT_RECOVERY: u32 = 0x211;

/// The TPM's one, machine-wide counter of wrong authValues of DA-protected objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DictionaryAttack {
    pub failures: u32,
    pub max_failures: u32,
    /// Seconds after which the TPM forgets one failure (0: only a reset clears them).
    pub interval: u32,
    /// Seconds before the lockout hierarchy may be tried again after a wrong lockout auth.
    pub lockout_recovery: u32,
}

impl DictionaryAttack {
    pub fn read() -> Result<DictionaryAttack> {
        let props = crate::keys::tpm_properties(TPM_PT_LOCKOUT_COUNTER, 4)?;
        let get = |p: u32| props.iter().find(|(k, _)| *k == p).map_or(0, |(_, v)| *v);
        Ok(DictionaryAttack {
            failures: get(TPM_PT_LOCKOUT_COUNTER),
            max_failures: get(TPM_PT_MAX_AUTH_FAIL),
            interval: get(TPM_PT_LOCKOUT_INTERVAL),
            lockout_recovery: get(TPM_PT_LOCKOUT_RECOVERY),
        })
    }

    pub fn is_locked_out(&self) -> bool {
        self.failures >= self.max_failures
    }

    /// Seconds until the TPM accepts one try again (0 when it does now; None when only a
    /// reset ends the lockout).
    pub fn seconds_to_next_try(&self) -> Option<u64> {
        if !self.is_locked_out() {
            return Some(0);
        }
        if self.interval == 0 {
            return None;
        }
        // The counter drops one step per interval; below the limit, one try is allowed.
        let steps = u64::from(self.failures - self.max_failures) + 1;
        Some(steps.saturating_mul(u64::from(self.interval)))
    }

    /// What a user reads when the TPM refuses because of lockout.
    pub fn advice(&self) -> String {
        let wait = match self.seconds_to_next_try() {
            Some(0) => "it accepts a try again now".to_string(),
            Some(s) => format!(
                "it accepts one try again in at most {s} s (one failure is forgotten every {} s)",
                self.interval
            ),
            None => "it forgets no failure by itself (lockout interval 0)".to_string(),
        };
        format!(
            "the TPM is in dictionary-attack lockout ({} of {} failures counted, from any \
             application on this machine); {wait}, or the TPM's owner clears it at once with \
             `tpm2_dictionarylockout -c` (the lockout hierarchy's password, -p)",
            self.failures, self.max_failures
        )
    }
}

/// The advice for a lockout the TPM just reported, or a fallback when it cannot be asked.
pub fn lockout_advice() -> String {
    match DictionaryAttack::read() {
        Ok(state) => state.advice(),
        Err(e) => format!(
            "the TPM is in dictionary-attack lockout (its state could not be read: {e}); wait \
             for its lockout interval, or clear it with `tpm2_dictionarylockout -c` (the \
             lockout hierarchy's password, -p)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(failures: u32, max: u32, interval: u32) -> DictionaryAttack {
        DictionaryAttack {
            failures,
            max_failures: max,
            interval,
            lockout_recovery: 0,
        }
    }

    #[test]
    fn waiting_time_follows_the_interval() {
        assert_eq!(state(2, 3, 1000).seconds_to_next_try(), Some(0));
        assert_eq!(state(3, 3, 1000).seconds_to_next_try(), Some(1000));
        assert_eq!(state(5, 3, 10).seconds_to_next_try(), Some(30));
        assert_eq!(state(3, 3, 0).seconds_to_next_try(), None);
        let advice = state(3, 3, 1000).advice();
        assert!(advice.contains("1000 s"), "{advice}");
        assert!(advice.contains("tpm2_dictionarylockout -c"), "{advice}");
    }
}
