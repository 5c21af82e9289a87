//! The objects this process has in the TPM: which are loaded (a TPM has about three
//! transient slots, shared with every other process without a resource manager), and the
//! saved context of each that has left, so that one ContextLoad brings it back instead of a
//! new Load (or a new CreatePrimary). The one path by which a blob is loaded, its Name
//! checked and its context saved.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use zeroize::Zeroizing;

use crate::commands::Tpm;
use crate::error::{Error, Result};

use super::retry::{classify, Failure};

/// At most this many transient objects of ours are loaded at any moment (a TPM has ~3).
pub const MAX_TRANSIENT: usize = 2;

/// The id of the transient storage primary among our objects (keys' ids are never 0).
pub(crate) const STORAGE_KEY_ID: u64 = 0;

/// A loaded object as an operation sees it: handle, Name and the authValue to use.
#[derive(Debug, Clone)]
pub struct Target {
    pub handle: u32,
    pub name: Vec<u8>,
    pub auth: Zeroizing<Vec<u8>>,
}

#[derive(Debug, Default)]
pub(crate) struct LoadedObjects {
    /// Transient objects we have loaded, least recently used first: (id, handle).
    loaded: Vec<(u64, u32)>,
    /// Saved contexts, by object id. An object's context is saved once, when it first has
    /// to leave the TPM (or at once under per-operation), and is good from then on.
    contexts: HashMap<u64, Vec<u8>>,
}

impl LoadedObjects {
    /// The handle of object `id` if it is loaded, marking it most recently used.
    pub(crate) fn find(&mut self, id: u64) -> Option<u32> {
        let i = self.loaded.iter().position(|(k, _)| *k == id)?;
        let entry = self.loaded.remove(i);
        self.loaded.push(entry);
        Some(entry.1)
    }

    /// Whether object `id` is loaded or has a saved context (so the TPM has accepted it).
    pub(crate) fn holds(&self, id: u64) -> bool {
        self.loaded.iter().any(|(k, _)| *k == id) || self.contexts.contains_key(&id)
    }

    pub(crate) fn has_context(&self, id: u64) -> bool {
        self.contexts.contains_key(&id)
    }

    /// Takes object `id` off the loaded list without flushing it: the caller flushes.
    pub(crate) fn take(&mut self, id: u64) -> Option<u32> {
        let i = self.loaded.iter().position(|(k, _)| *k == id)?;
        Some(self.loaded.remove(i).1)
    }

    /// Forgets the saved context of object `id`, if any.
    pub(crate) fn forget_context(&mut self, id: u64) {
        self.contexts.remove(&id);
    }

    /// Takes every loaded object off the list, least recently used first.
    pub(crate) fn take_all(&mut self) -> Vec<(u64, u32)> {
        std::mem::take(&mut self.loaded)
    }

    /// Records a handle loaded by other means (the storage primary, just created).
    pub(crate) fn loaded(&mut self, id: u64, handle: u32) {
        self.loaded.push((id, handle));
    }

    /// Frees slots until one more object fits, never evicting `protect`.
    pub(crate) fn make_room(&mut self, tpm: &mut Tpm, protect: &[u64]) -> Result<()> {
        while self.loaded.len() >= MAX_TRANSIENT {
            let Some(i) = self.loaded.iter().position(|(id, _)| !protect.contains(id)) else {
                break;
            };
            let (id, handle) = self.loaded.remove(i);
            self.unload(tpm, id, handle)?;
        }
        Ok(())
    }

    /// Flushes one of our objects, saving its context first if we have none yet.
    pub(crate) fn unload(&mut self, tpm: &mut Tpm, id: u64, handle: u32) -> Result<()> {
        if let Entry::Vacant(slot) = self.contexts.entry(id) {
            slot.insert(tpm.context_save(handle)?);
        }
        tpm.flush_context(handle)
    }

    /// Object `id`'s handle: loaded already, or brought back from its saved context.
    /// `None` when it has no context, or one that is stale (`behind_resource_manager`: see
    /// [`LoadedObjects::is_stale`]) and now forgotten: the caller loads or creates it anew.
    pub(crate) fn reload(
        &mut self,
        tpm: &mut Tpm,
        id: u64,
        behind_resource_manager: bool,
    ) -> Result<Option<u32>> {
        if let Some(handle) = self.find(id) {
            return Ok(Some(handle));
        }
        let Some(ctx) = self.contexts.get(&id).cloned() else {
            return Ok(None);
        };
        self.make_room(tpm, &[])?;
        match tpm.context_load(&ctx) {
            Ok(handle) => {
                self.loaded.push((id, handle));
                Ok(Some(handle))
            }
            Err(e) if self.is_stale(&e, behind_resource_manager) => {
                self.contexts.remove(&id);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Loads object `id` with `load` (TPM2_Load under a parent that is loaded and must stay:
    /// the storage primary is never evicted for it), checks that the TPM computed `name`
    /// for it, and under per-operation (`save_context`) saves its context at once, while
    /// the object is still at hand.
    pub(crate) fn load(
        &mut self,
        tpm: &mut Tpm,
        id: u64,
        name: &[u8],
        save_context: bool,
        load: impl FnOnce(&mut Tpm) -> Result<(u32, Vec<u8>)>,
    ) -> Result<u32> {
        self.make_room(tpm, &[STORAGE_KEY_ID])?;
        let (handle, tpm_name) = load(tpm)?;
        self.loaded.push((id, handle));
        if tpm_name != name {
            return Err(Error::Integrity(
                "the TPM computed another Name for the loaded key".into(),
            ));
        }
        if save_context {
            let ctx = tpm.context_save(handle)?;
            self.contexts.insert(id, ctx);
        }
        Ok(handle)
    }

    /// A saved context that will not load although this process holds nothing loaded: a
    /// resource manager whose TPM restarted refuses such contexts (tpm2-abrmd answers
    /// TPM_RC_OBJECT_MEMORY), so the object is re-created from its blob or template instead
    /// of retrying the same ContextLoad until the deadline.
    fn is_stale(&self, e: &Error, behind_resource_manager: bool) -> bool {
        classify(e) == Failure::Busy && self.loaded.is_empty() && behind_resource_manager
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_marks_the_object_most_recently_used() {
        let mut objects = LoadedObjects::default();
        objects.loaded(STORAGE_KEY_ID, 0x8000_0000);
        objects.loaded(7, 0x8000_0001);
        assert_eq!(objects.find(STORAGE_KEY_ID), Some(0x8000_0000));
        // The storage primary is now the last to be evicted.
        assert_eq!(
            objects.take_all(),
            vec![(7, 0x8000_0001), (STORAGE_KEY_ID, 0x8000_0000)]
        );
        assert_eq!(objects.find(7), None);
    }

    #[test]
    fn an_object_is_held_while_loaded_or_saved_and_take_leaves_the_rest() {
        let mut objects = LoadedObjects::default();
        objects.loaded(3, 0x8000_0003);
        objects.loaded(5, 0x8000_0005);
        assert!(objects.holds(3) && objects.holds(5) && !objects.holds(9));
        objects.contexts.insert(9, vec![1, 2, 3]);
        assert!(objects.holds(9) && objects.has_context(9) && !objects.has_context(3));
        assert_eq!(objects.take(3), Some(0x8000_0003));
        assert_eq!(objects.take(3), None);
        assert!(!objects.holds(3));
        assert_eq!(objects.take_all(), vec![(5, 0x8000_0005)]);
    }
}
