//! How DynamoDB sizes items and charges for them, on items in DynamoDB's wire JSON
//! (`{"S": "…"}`, `{"N": "…"}`, …). The rules, from the DynamoDB Developer Guide ("Item sizes and
//! formats", "DynamoDB read and write operations", "Provisioned throughput considerations for
//! global secondary indexes"):
//!
//! - an item's size is the sum of its attribute names' and values' sizes: a string its UTF-8
//!   length, a number 1 byte per two significant digits plus 1, binary its length, a boolean or
//!   null 1 byte, a list or map 3 bytes plus its elements plus 1 byte per element;
//! - a write costs 1 write unit per KB (1,024 bytes, rounded up) of the larger of the item before
//!   and after, 2 in a transaction; a strongly consistent read 1 read unit per 4 KB (half that
//!   eventually consistent), a Query per 4 KB of all the entries it evaluated, before any filter;
//! - a write to a table writes a global secondary index only when the index entry changes: put
//!   when the item enters the index, delete when it leaves, delete and put when its index key
//!   changes, one write when a projected attribute changes, nothing otherwise.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

pub const WRITE_UNIT_BYTES: u64 = 1024;
pub const READ_UNIT_BYTES: u64 = 4096;

/// The size of a number, by its significant digits.
fn number_size(text: &str) -> u64 {
    let digits: String = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    (significant as u64).div_ceil(2) + 1
}

/// The size of one attribute value.
pub fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, |s| s.len() as u64),
        "N" => inner.as_str().map_or(1, number_size),
        "B" => inner.as_str().map_or(0, |b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_or(b.len(), |d| d.len()) as u64
        }),
        "BOOL" | "NULL" => 1,
        "SS" => inner.as_array().map_or(0, |a| {
            a.iter()
                .map(|s| s.as_str().map_or(0, str::len) as u64)
                .sum()
        }),
        "NS" => inner.as_array().map_or(0, |a| {
            a.iter().map(|n| n.as_str().map_or(1, number_size)).sum()
        }),
        "L" => inner
            .as_array()
            .map_or(3, |a| 3 + a.iter().map(|v| value_size(v) + 1).sum::<u64>()),
        "M" => inner
            .as_object()
            .map_or(3, |m| 3 + item_size(m) + m.len() as u64),
        _ => 0,
    }
}

/// The size of an item: its attribute names and values.
pub fn item_size(item: &Map<String, Value>) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

/// Write units for a write whose item was `before` and is `after` (either absent), at the
/// transactional rate when `transactional`.
pub fn write_units(
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
    transactional: bool,
) -> f64 {
    let size = before
        .map_or(0, item_size)
        .max(after.map_or(0, item_size))
        .max(1);
    let units = size.div_ceil(WRITE_UNIT_BYTES) as f64;
    if transactional { 2.0 * units } else { units }
}

/// Read units for reading `bytes` at once (an item, or everything a Query evaluated).
pub fn read_units(bytes: u64, consistent: bool) -> f64 {
    let units = bytes.max(1).div_ceil(READ_UNIT_BYTES) as f64;
    if consistent { units } else { units / 2.0 }
}

/// What a global secondary index holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexShape {
    pub name: String,
    /// The index's own key attributes.
    pub keys: Vec<String>,
    /// The table's key attributes (every entry carries them).
    pub table_keys: Vec<String>,
    /// `None`: every attribute (projection ALL); else these besides the keys.
    pub projected: Option<BTreeSet<String>>,
}

impl IndexShape {
    /// The index entry of `item`, if the item has every index key attribute (sparse indexes).
    pub fn entry(&self, item: &Map<String, Value>) -> Option<Map<String, Value>> {
        if !self.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        Some(
            item.iter()
                .filter(|(name, _)| {
                    self.keys.contains(name)
                        || self.table_keys.contains(name)
                        || self.projected.as_ref().is_none_or(|p| p.contains(*name))
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        )
    }

    /// Write units the index consumes when an item goes from `before` to `after`.
    pub fn write_units(
        &self,
        before: Option<&Map<String, Value>>,
        after: Option<&Map<String, Value>>,
    ) -> f64 {
        let old = before.and_then(|i| self.entry(i));
        let new = after.and_then(|i| self.entry(i));
        let units = |entry: &Map<String, Value>| write_units(Some(entry), None, false);
        match (&old, &new) {
            (None, None) => 0.0,
            (None, Some(new)) => units(new),
            (Some(old), None) => units(old),
            (Some(old), Some(new)) => {
                let key_moved = self.keys.iter().any(|k| old.get(k) != new.get(k));
                if key_moved {
                    units(old) + units(new)
                } else if old != new {
                    write_units(Some(old), Some(new), false)
                } else {
                    0.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn sizes_as_the_developer_guide_counts_them() {
        // Strings: name + UTF-8 bytes.
        assert_eq!(item_size(&item(json!({"Name": {"S": "Alice"}}))), 4 + 5);
        assert_eq!(item_size(&item(json!({"a": {"S": "é"}}))), 1 + 2);
        // Numbers: one byte per two significant digits, plus one.
        assert_eq!(value_size(&json!({"N": "1"})), 2);
        assert_eq!(value_size(&json!({"N": "1795478400000"})), 1 + 4); // 1795478400000: 8 significant
        assert_eq!(value_size(&json!({"N": "123456"})), 4);
        assert_eq!(value_size(&json!({"N": "-0.001"})), 2);
        // Booleans and nulls: one byte; lists and maps: 3 + elements + 1 each.
        assert_eq!(value_size(&json!({"BOOL": true})), 1);
        assert_eq!(
            value_size(&json!({"L": [{"S": "ab"}, {"S": "c"}]})),
            3 + 3 + 2
        );
        assert_eq!(value_size(&json!({"M": {"k": {"S": "v"}}})), 3 + 2 + 1);
    }

    #[test]
    fn units_round_up_per_item_and_double_in_transactions() {
        let small = item(json!({"k": {"S": "x".repeat(1000)}}));
        let large = item(json!({"k": {"S": "x".repeat(1100)}}));
        assert_eq!(write_units(None, Some(&small), false), 1.0);
        assert_eq!(write_units(Some(&small), Some(&large), false), 2.0);
        assert_eq!(write_units(Some(&large), Some(&small), true), 4.0);
        assert_eq!(read_units(4096, true), 1.0);
        assert_eq!(read_units(4097, true), 2.0);
        assert_eq!(read_units(100, false), 0.5);
    }

    #[test]
    fn an_index_is_written_only_when_its_entry_changes() {
        let index = IndexShape {
            name: "listing".into(),
            keys: vec!["ListingKey".into(), "Listing".into()],
            table_keys: vec!["CallSid".into()],
            projected: Some(["Status".to_owned()].into()),
        };
        let call = |status: &str, version: &str| {
            item(json!({
                "CallSid": {"S": "CA1"}, "ListingKey": {"S": "AC1#0"}, "Listing": {"S": "1#CA1"},
                "Status": {"S": status}, "Version": {"N": version}
            }))
        };
        let (queued, ringing, ringing_again) = (
            call("queued", "1"),
            call("ringing", "2"),
            call("ringing", "3"),
        );
        assert_eq!(index.write_units(None, Some(&queued)), 1.0, "created");
        assert_eq!(
            index.write_units(Some(&queued), Some(&ringing)),
            1.0,
            "projected change"
        );
        assert_eq!(
            index.write_units(Some(&ringing), Some(&ringing_again)),
            0.0,
            "only an unprojected attribute changed"
        );
        let mut moved = ringing.clone();
        moved.insert("ListingKey".into(), json!({"S": "AC1#1"}));
        assert_eq!(
            index.write_units(Some(&ringing), Some(&moved)),
            2.0,
            "key changed"
        );
        let mut gone = ringing.clone();
        gone.remove("ListingKey");
        assert_eq!(
            index.write_units(Some(&ringing), Some(&gone)),
            1.0,
            "left the index"
        );
        assert_eq!(
            index.write_units(Some(&gone), Some(&gone)),
            0.0,
            "never in it"
        );
    }
}
