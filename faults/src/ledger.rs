//! Every acknowledged message against what subscribers received and what history returns.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What one subscriber saw of one chat, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Message ids pushed live.
    pub live: Vec<String>,
    /// Message ids handed back by a recovery (the subscribe reply's publications).
    pub recovered: Vec<String>,
    /// Times the hub said it could not recover (`recovered: false`): the client must reload
    /// history, which the suite does, so what it then holds counts as recovered.
    pub unrecoverable: u32,
}

/// One fault's line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fault: String,
    pub acknowledged: usize,
    /// Acknowledged messages every subscriber got live.
    pub delivered_live: usize,
    /// Acknowledged messages some subscriber got only through recovery.
    pub recovered: usize,
    pub stored: usize,
    /// Acknowledged ids missing from a subscriber or from history.
    pub lost: Vec<String>,
    /// Ids a subscriber received twice (live or recovered), or history listed twice.
    pub duplicated: Vec<String>,
    /// From the fault healed to everything acknowledged delivered and stored.
    pub time_to_recover: Option<Duration>,
}

/// Tallies one fault: `acked` are the ids the API acknowledged (201 or 202), `subscribers`
/// what each subscriber received, `history` the ids history listed, in order.
pub fn tally(
    fault: &str,
    acked: &[String],
    subscribers: &[Received],
    history: &[String],
    time_to_recover: Option<Duration>,
) -> Row {
    let mut lost = BTreeSet::new();
    let mut duplicated = BTreeSet::new();
    let mut only_recovered = BTreeSet::new();
    let stored: BTreeSet<&String> = history.iter().collect();
    for (id, n) in counts(history.iter()) {
        if n > 1 {
            duplicated.insert(id.clone());
        }
    }
    for s in subscribers {
        let live: BTreeSet<&String> = s.live.iter().collect();
        let recovered: BTreeSet<&String> = s.recovered.iter().collect();
        for (id, n) in counts(s.live.iter().chain(&s.recovered)) {
            if n > 1 {
                duplicated.insert(id.clone());
            }
        }
        for id in acked {
            if !live.contains(id) {
                if recovered.contains(id) {
                    only_recovered.insert(id.clone());
                } else {
                    lost.insert(id.clone());
                }
            }
        }
    }
    for id in acked {
        if !stored.contains(id) {
            lost.insert(id.clone());
        }
    }
    let acked_set: BTreeSet<&String> = acked.iter().collect();
    Row {
        fault: fault.to_owned(),
        acknowledged: acked_set.len(),
        delivered_live: acked
            .iter()
            .filter(|id| !lost.contains(*id) && !only_recovered.contains(*id))
            .count(),
        recovered: only_recovered.len(),
        stored: acked.iter().filter(|id| stored.contains(id)).count(),
        lost: lost.into_iter().collect(),
        duplicated: duplicated.into_iter().collect(),
        time_to_recover,
    }
}

fn counts<'a>(ids: impl Iterator<Item = &'a String>) -> BTreeMap<&'a String, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_clean_run_has_nothing_lost_or_duplicated() {
        let acked = ids(&["a", "b", "c"]);
        let s = Received {
            live: ids(&["a", "b", "c"]),
            ..Default::default()
        };
        let row = tally(
            "none",
            &acked,
            &[s.clone(), s],
            &ids(&["c", "b", "a"]),
            None,
        );
        assert_eq!(
            (
                row.acknowledged,
                row.delivered_live,
                row.recovered,
                row.stored
            ),
            (3, 3, 0, 3)
        );
        assert!(row.lost.is_empty() && row.duplicated.is_empty());
    }

    #[test]
    fn missing_anywhere_is_lost_and_twice_anywhere_is_duplicated() {
        let acked = ids(&["a", "b", "c", "d"]);
        let one = Received {
            live: ids(&["a", "b"]),
            recovered: ids(&["c", "b"]),
            unrecoverable: 0,
        };
        let two = Received {
            live: ids(&["a", "b", "c", "d"]),
            ..Default::default()
        };
        // d never reached subscriber one; history lacks b and lists a twice.
        let row = tally("f", &acked, &[one, two], &ids(&["a", "a", "c", "d"]), None);
        assert_eq!(row.lost, ids(&["b", "d"]));
        assert_eq!(row.duplicated, ids(&["a", "b"]));
        assert_eq!(
            row.recovered, 1,
            "c reached subscriber one only by recovery"
        );
        assert_eq!(row.delivered_live, 1, "a alone reached everyone live");
        assert_eq!(row.stored, 3);
    }

    #[test]
    fn an_unacknowledged_message_that_arrives_is_neither_lost_nor_counted() {
        // A send whose acknowledgement was lost may still be delivered: that is not a loss,
        // and it is not in the acknowledged count either.
        let s = Received {
            live: ids(&["a", "x"]),
            ..Default::default()
        };
        let row = tally("f", &ids(&["a"]), &[s], &ids(&["a", "x"]), None);
        assert_eq!((row.acknowledged, row.stored), (1, 1));
        assert!(row.lost.is_empty() && row.duplicated.is_empty());
    }
}
