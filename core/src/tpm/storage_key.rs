//! The storage keys that parent tpmkey's keys and salt its sessions: the transient storage
//! primary (created once per connection under the owner hierarchy and from then on kept as a
//! saved context, never re-created per key load) and persistent parents (their public areas
//! read once). Each is used only with the Name pinned for it (`storage_key_pin`).

use std::collections::HashMap;

use zeroize::Zeroizing;

use crate::commands::Tpm;
use crate::config::{behind_resource_manager, Config};
use crate::error::{Error, Result};
use crate::public_key::{Curve, KeyPublic, PublicKey};
use crate::session::SaltKey;
use crate::storage_key_pin;
use crate::templates;
use crate::wire::TPM_RH_OWNER;

use super::loaded_objects::{LoadedObjects, Target, STORAGE_KEY_ID};

/// The storage primary, once created: its Name and the point that salts sessions.
#[derive(Debug)]
struct Primary {
    name: Vec<u8>,
    salt: SaltKey,
}

#[derive(Debug, Default)]
pub(crate) struct StorageKeys {
    primary: Option<Primary>,
    /// Public areas of persistent objects, read once.
    persistent: HashMap<u32, KeyPublic>,
    /// Storage keys whose Name this connection has checked against the pin.
    pins_checked: Vec<u32>,
    /// Whether the current operation needed the storage primary.
    pub(crate) used: bool,
}

impl StorageKeys {
    /// Loads the transient storage primary key: from its saved context, or created once,
    /// with `owner_auth` if given, else the configured owner authorization.
    pub(crate) fn primary(
        &mut self,
        tpm: &mut Tpm,
        objects: &mut LoadedObjects,
        config: &Config,
        owner_auth: Option<&[u8]>,
    ) -> Result<u32> {
        self.used = true;
        let rm = behind_resource_manager(&config.tcti);
        if let Some(handle) = objects.reload(tpm, STORAGE_KEY_ID, rm)? {
            return Ok(handle);
        }
        objects.make_room(tpm, &[])?;
        let template = templates::storage_key()?;
        let auth = match owner_auth {
            Some(a) => Zeroizing::new(a.to_vec()),
            None => config.parent_auth.clone(),
        };
        let (handle, public, _) = tpm.create_primary(TPM_RH_OWNER, &auth, &template)?;
        let public = KeyPublic::parse(&public)?;
        if let Err(e) = self.check_pinned(config, TPM_RH_OWNER, &public.name) {
            let _ = tpm.flush_context(handle);
            return Err(e);
        }
        let PublicKey::Ec { x, y, .. } = public.key else {
            return Err(Error::Integrity("storage key is not an ECC key".into()));
        };
        self.primary = Some(Primary {
            name: public.name,
            salt: SaltKey { x, y },
        });
        objects.loaded(STORAGE_KEY_ID, handle);
        Ok(handle)
    }

    /// A key's parent, loaded, with its authValue: `auth` if given, else the configured
    /// `parent-auth` for the configured parent (the storage primary: the owner's, if it
    /// has to be created).
    pub(crate) fn parent(
        &mut self,
        tpm: &mut Tpm,
        objects: &mut LoadedObjects,
        config: &Config,
        parent: u32,
        auth: Option<&[u8]>,
    ) -> Result<Target> {
        match parent {
            TPM_RH_OWNER => {
                let handle = self.primary(tpm, objects, config, auth)?;
                let name = self
                    .primary
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                Ok(Target {
                    handle,
                    name,
                    auth: Zeroizing::new(Vec::new()),
                })
            }
            0x8100_0000..=0x81FF_FFFF => {
                let name = self.persistent_public(tpm, parent)?.name;
                let auth = match auth {
                    Some(a) => Zeroizing::new(a.to_vec()),
                    None if config.parent == Some(parent) => config.parent_auth.clone(),
                    None => Zeroizing::new(Vec::new()),
                };
                Ok(Target {
                    handle: parent,
                    name,
                    auth,
                })
            }
            _ => Err(Error::Unsupported(format!(
                "parent handle 0x{parent:08x} (use 0x40000001 or 0x81xxxxxx)"
            ))),
        }
    }

    /// The storage key that salts the session: the configured persistent parent, or the
    /// transient primary.
    pub(crate) fn salt_key(
        &mut self,
        tpm: &mut Tpm,
        objects: &mut LoadedObjects,
        config: &Config,
    ) -> Result<(u32, SaltKey)> {
        let Some(handle) = config.parent else {
            let handle = self.primary(tpm, objects, config, None)?;
            return match &self.primary {
                Some(p) => Ok((handle, p.salt.clone())),
                None => Err(Error::Integrity("storage key not created".into())),
            };
        };
        let public = self.persistent_public(tpm, handle)?;
        self.check_pinned(config, handle, &public.name)?;
        match public.key {
            PublicKey::Ec {
                curve: Curve::P256,
                x,
                y,
            } => Ok((handle, SaltKey { x, y })),
            _ => Err(Error::Unsupported(format!(
                "salting the session with storage key 0x{handle:08x}: only ECC P-256 storage keys salt sessions"
            ))),
        }
    }

    /// The storage key `parent` may salt sessions and carry secrets only with the Name
    /// pinned for it (configured, or recorded on first use); checked once per connection.
    fn check_pinned(&mut self, config: &Config, parent: u32, name: &[u8]) -> Result<()> {
        if self.pins_checked.contains(&parent) {
            return Ok(());
        }
        storage_key_pin::check(config, parent, name)?;
        self.pins_checked.push(parent);
        Ok(())
    }

    /// The public area of a persistent object (TPM2_ReadPublic once, then cached), whose
    /// Name must be the one its public area gives.
    pub(crate) fn persistent_public(&mut self, tpm: &mut Tpm, handle: u32) -> Result<KeyPublic> {
        if let Some(p) = self.persistent.get(&handle) {
            return Ok(p.clone());
        }
        let (blob, name) = tpm.read_public(handle)?;
        let public = KeyPublic::parse(&blob)?;
        if public.name != name {
            return Err(Error::Integrity(format!(
                "ReadPublic of 0x{handle:08x}: Name does not match its public area"
            )));
        }
        self.persistent.insert(handle, public.clone());
        Ok(public)
    }

    pub(crate) fn forget_persistent(&mut self, handle: u32) {
        self.persistent.remove(&handle);
    }
}
