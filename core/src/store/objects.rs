//! A token's objects as one snapshot: sorted by uid, with an index of the attributes that
//! searches name (label, id), so finding one object among thousands costs what finding it
//! among ten does.

use std::collections::HashMap;
use std::sync::Arc;

use super::record::{Attributes, Record};

/// Attribute types (PKCS#11 numbering, as in [`Attributes`]) the index covers: CKA_LABEL
/// and CKA_ID, the attributes applications look objects up by.
const INDEXED: [u64; 2] = [0x003, 0x102];

/// (indexed attribute, value) -> the (position in the sorted records, part) holding it.
type Index = HashMap<(u64, Vec<u8>), Vec<(usize, usize)>>;

/// One object of a snapshot: its record's uid, the part of the record (0, or 1 for the
/// private half of a key pair) and its attributes.
pub type ObjectPart<'a> = (&'a str, usize, &'a Attributes);

#[derive(Debug, Default)]
pub struct Objects {
    sorted: Vec<(String, Arc<Record>)>,
    index: Index,
}

impl Objects {
    pub(super) fn new<'a>(records: impl Iterator<Item = (&'a String, &'a Arc<Record>)>) -> Self {
        let mut sorted: Vec<(String, Arc<Record>)> =
            records.map(|(uid, r)| (uid.clone(), r.clone())).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut index = Index::new();
        for (pos, (_, record)) in sorted.iter().enumerate() {
            for (part, attrs) in record.parts.iter().enumerate() {
                for t in INDEXED {
                    if let Some(v) = attrs.get(&t) {
                        index.entry((t, v.clone())).or_default().push((pos, part));
                    }
                }
            }
        }
        Objects { sorted, index }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The records, in uid order.
    pub fn records(&self) -> &[(String, Arc<Record>)] {
        &self.sorted
    }

    /// Every object, in uid order.
    pub fn all(&self) -> Vec<ObjectPart<'_>> {
        self.sorted
            .iter()
            .flat_map(|(uid, r)| {
                r.parts
                    .iter()
                    .enumerate()
                    .map(move |(part, attrs)| (uid.as_str(), part, attrs))
            })
            .collect()
    }

    /// The objects that can match `template`, in uid order: through the index when the
    /// template names an indexed attribute, else all of them. The caller still matches each.
    pub fn candidates(&self, template: &Attributes) -> Vec<ObjectPart<'_>> {
        let narrowest = INDEXED
            .iter()
            .filter_map(|t| template.get(t).map(|v| (*t, v)))
            .map(|(t, v)| {
                self.index
                    .get(&(t, v.clone()))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|hits| hits.len());
        match narrowest {
            None => self.all(),
            Some(hits) => hits
                .iter()
                .map(|&(pos, part)| {
                    let (uid, record) = &self.sorted[pos];
                    (uid.as_str(), part, &record.parts[part])
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(parts: &[&[(u64, &[u8])]]) -> Arc<Record> {
        Arc::new(Record {
            parts: parts
                .iter()
                .map(|p| p.iter().map(|(t, v)| (*t, v.to_vec())).collect())
                .collect(),
            has_key: false,
            has_sealed: false,
        })
    }

    #[test]
    fn candidates_come_from_the_index_in_uid_order() {
        let records: HashMap<String, Arc<Record>> = [
            ("b".to_string(), record(&[&[(0, b"\x01"), (3, b"x")]])),
            (
                "a".to_string(),
                record(&[
                    &[(3, b"x"), (0x102, b"\x07")],
                    &[(3, b"y"), (0x102, b"\x07")],
                ]),
            ),
            ("c".to_string(), record(&[&[(0, b"\x02")]])),
        ]
        .into_iter()
        .collect();
        let objects = Objects::new(records.iter());
        assert_eq!(objects.len(), 3);
        assert_eq!(objects.all().len(), 4);

        let template = |pairs: &[(u64, &[u8])]| -> Attributes {
            pairs.iter().map(|(t, v)| (*t, v.to_vec())).collect()
        };
        let ids = |found: Vec<ObjectPart<'_>>| -> Vec<(String, usize)> {
            found
                .into_iter()
                .map(|(u, p, _)| (u.to_string(), p))
                .collect()
        };
        assert_eq!(
            ids(objects.candidates(&template(&[(3, b"x")]))),
            [("a".into(), 0), ("b".into(), 0)]
        );
        // The narrower of label and id wins; the caller matches the rest.
        assert_eq!(
            ids(objects.candidates(&template(&[(3, b"y"), (0x102, b"\x07")]))),
            [("a".into(), 1)]
        );
        assert!(objects.candidates(&template(&[(3, b"none")])).is_empty());
        // No indexed attribute: every object.
        assert_eq!(objects.candidates(&template(&[(0, b"\x02")])).len(), 4);
    }
}
