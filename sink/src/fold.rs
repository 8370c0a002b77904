//! Folds one flush's changes into one write per item.
//!
//! BatchWriteItem refuses a request that names the same key twice, and the calls of one
//! flush run concurrently, so two events about one message in the same flush (created, then
//! edited) must become one write: the edit applied to the put. Changes are folded in record
//! order, which within a partition is the order they happened.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use chorus_history::model::{Change, Item, Key};

/// The one write a flush makes for an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put(Item),
    /// Set attributes if the item exists.
    Update(Vec<(String, AttributeValue)>),
    Delete,
}

/// An item's write and the records (indices into the flush) that led to it, so a write
/// DynamoDB refuses can dead-letter exactly those records.
#[derive(Debug)]
pub struct Folded {
    pub key: Key,
    pub write: Write,
    pub records: Vec<usize>,
}

/// Folds `(record index, key, change)` in record order.
pub fn fold(changes: impl IntoIterator<Item = (usize, Key, Change)>) -> Vec<Folded> {
    let mut by_key: BTreeMap<Key, (Write, Vec<usize>)> = BTreeMap::new();
    for (index, key, change) in changes {
        match by_key.remove(&key) {
            None => {
                by_key.insert(key, (first(change), vec![index]));
            }
            Some((write, mut records)) => {
                records.push(index);
                by_key.insert(key, (then(write, change), records));
            }
        }
    }
    by_key
        .into_iter()
        .map(|(key, (write, records))| Folded {
            key,
            write,
            records,
        })
        .collect()
}

fn first(change: Change) -> Write {
    match change {
        Change::Put(item) => Write::Put(item),
        Change::Update(sets) => Write::Update(sets),
        Change::Delete => Write::Delete,
    }
}

/// `write`, followed by `change`.
fn then(write: Write, change: Change) -> Write {
    match (write, change) {
        (_, Change::Put(item)) => Write::Put(item),
        (_, Change::Delete) => Write::Delete,
        (Write::Put(mut item), Change::Update(sets)) => {
            item.extend(sets);
            Write::Put(item)
        }
        (Write::Update(mut earlier), Change::Update(sets)) => {
            for (name, value) in sets {
                earlier.retain(|(n, _)| *n != name);
                earlier.push((name, value));
            }
            Write::Update(earlier)
        }
        // An update of a deleted message changes nothing.
        (Write::Delete, Change::Update(_)) => Write::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(m: &str) -> Key {
        Key {
            chat_id: "c".into(),
            message_id: m.into(),
        }
    }

    fn text(t: &str) -> (String, AttributeValue) {
        ("text".into(), AttributeValue::S(t.into()))
    }

    fn put(t: &str) -> Change {
        let mut item = key("a").item();
        item.extend([text(t)]);
        Change::Put(item)
    }

    #[test]
    fn a_create_and_its_edits_become_one_put_with_the_last_text() {
        let out = fold([
            (0, key("a"), put("one")),
            (1, key("b"), Change::Update(vec![text("b1")])),
            (2, key("a"), Change::Update(vec![text("two")])),
            (3, key("b"), Change::Update(vec![text("b2")])),
        ]);
        assert_eq!(out.len(), 2);
        let Write::Put(item) = &out[0].write else {
            panic!("a put")
        };
        assert_eq!(item["text"], AttributeValue::S("two".into()));
        assert_eq!(out[0].records, [0, 2]);
        assert_eq!(out[1].write, Write::Update(vec![text("b2")]));
        assert_eq!(out[1].records, [1, 3]);
    }

    #[test]
    fn a_delete_wins_over_what_came_before_and_updates_after_it() {
        let out = fold([
            (0, key("a"), put("one")),
            (1, key("a"), Change::Delete),
            (2, key("a"), Change::Update(vec![text("late")])),
        ]);
        assert_eq!(out[0].write, Write::Delete);
        // A re-created message (a replay from before the delete) is a put again.
        let out = fold([(0, key("a"), Change::Delete), (1, key("a"), put("again"))]);
        assert!(matches!(out[0].write, Write::Put(_)));
    }
}
