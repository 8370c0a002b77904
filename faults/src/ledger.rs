//! Every acknowledged message against what subscribers received and what history returns.
//!
//! Senders retry each message with its idempotency key until it is acknowledged, the last one
//! too, so anything stored or delivered that was never acknowledged is an orphan: a send that
//! failed but left something behind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What one subscriber saw of one chat, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Message ids pushed live.
    pub live: Vec<String>,
    /// Message ids handed back by a recovery (the subscribe reply's publications).
    pub recovered: Vec<String>,
    /// Message ids of the `message.transcribed` events received, live or recovered.
    pub transcribed: Vec<String>,
    /// Times the hub said it could not recover (`recovered: false`): the client must reload
    /// history, which the suite does, so what it then holds counts as recovered.
    pub unrecoverable: u32,
}

/// What history returned for the chat at the end.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Message ids, in the order history listed them.
    pub ids: Vec<String>,
    /// The ids of those that carry a transcript.
    pub transcribed: Vec<String>,
}

/// What the senders were told: every acknowledged id, and which of them are voice messages
/// (each of which must get exactly one transcript).
#[derive(Debug, Default, Clone)]
pub struct Acknowledged {
    pub ids: Vec<String>,
    pub voice: Vec<String>,
}

/// One fault's line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fault: String,
    pub acknowledged: usize,
    /// Of those, voice messages.
    pub voice: usize,
    /// Acknowledged messages every subscriber got live.
    pub delivered_live: usize,
    /// Acknowledged messages some subscriber got only through recovery.
    pub recovered: usize,
    pub stored: usize,
    /// Voice messages whose transcript reached every subscriber and history.
    pub transcribed: usize,
    /// Acknowledged ids missing from a subscriber or from history; `<id> transcript` for a
    /// transcript missing.
    pub lost: Vec<String>,
    /// Ids a subscriber received twice (live or recovered), or history listed twice;
    /// `<id> transcript` for a transcript received twice.
    pub duplicated: Vec<String>,
    /// Ids stored or delivered that no sender was told were sent.
    pub orphans: Vec<String>,
    /// From the fault healed to everything acknowledged delivered and stored.
    pub time_to_recover: Option<Duration>,
    /// What the fault itself checked beyond the ledger (close codes, memory), in words.
    pub notes: String,
}

/// Tallies one fault from what was acknowledged, what each subscriber received and what
/// history listed.
pub fn tally(
    fault: &str,
    acked: &Acknowledged,
    subscribers: &[Received],
    history: &History,
    time_to_recover: Option<Duration>,
) -> Row {
    let mut lost = BTreeSet::new();
    let mut duplicated = BTreeSet::new();
    let mut only_recovered = BTreeSet::new();
    let acked_set: BTreeSet<&String> = acked.ids.iter().collect();
    let stored: BTreeSet<&String> = history.ids.iter().collect();
    let orphans: BTreeSet<String> = history
        .ids
        .iter()
        .chain(
            subscribers
                .iter()
                .flat_map(|s| s.live.iter().chain(&s.recovered)),
        )
        .filter(|id| !acked_set.contains(id))
        .cloned()
        .collect();
    for (id, n) in counts(history.ids.iter()) {
        if n > 1 {
            duplicated.insert(id.clone());
        }
    }
    let transcript = |id: &String| format!("{id} transcript");
    for s in subscribers {
        let live: BTreeSet<&String> = s.live.iter().collect();
        let recovered: BTreeSet<&String> = s.recovered.iter().collect();
        for (id, n) in counts(s.live.iter().chain(&s.recovered)) {
            if n > 1 {
                duplicated.insert(id.clone());
            }
        }
        for id in &acked.ids {
            if !live.contains(id) {
                if recovered.contains(id) {
                    only_recovered.insert(id.clone());
                } else {
                    lost.insert(id.clone());
                }
            }
        }
        let heard = counts(s.transcribed.iter());
        for id in &acked.voice {
            match heard.get(id) {
                None => lost.insert(transcript(id)),
                Some(1) => false,
                Some(_) => duplicated.insert(transcript(id)),
            };
        }
    }
    let history_transcribed: BTreeSet<&String> = history.transcribed.iter().collect();
    for id in &acked.ids {
        if !stored.contains(id) {
            lost.insert(id.clone());
        }
    }
    for id in &acked.voice {
        if !history_transcribed.contains(id) {
            lost.insert(transcript(id));
        }
    }
    let transcribed = acked
        .voice
        .iter()
        .filter(|id| !lost.contains(&transcript(id)) && !duplicated.contains(&transcript(id)))
        .count();
    Row {
        fault: fault.to_owned(),
        acknowledged: acked_set.len(),
        voice: acked.voice.len(),
        delivered_live: acked
            .ids
            .iter()
            .filter(|id| !lost.contains(*id) && !only_recovered.contains(*id))
            .count(),
        recovered: only_recovered.len(),
        stored: acked.ids.iter().filter(|id| stored.contains(id)).count(),
        transcribed,
        lost: lost.into_iter().collect(),
        duplicated: duplicated.into_iter().collect(),
        orphans: orphans.into_iter().collect(),
        time_to_recover,
        notes: String::new(),
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

    fn acked(text: &[&str], voice: &[&str]) -> Acknowledged {
        Acknowledged {
            ids: ids(text).into_iter().chain(ids(voice)).collect(),
            voice: ids(voice),
        }
    }

    fn history(list: &[&str], transcribed: &[&str]) -> History {
        History {
            ids: ids(list),
            transcribed: ids(transcribed),
        }
    }

    #[test]
    fn a_clean_run_has_nothing_lost_duplicated_or_orphaned() {
        let s = Received {
            live: ids(&["a", "b", "v"]),
            transcribed: ids(&["v"]),
            ..Default::default()
        };
        let row = tally(
            "none",
            &acked(&["a", "b"], &["v"]),
            &[s.clone(), s],
            &history(&["v", "b", "a"], &["v"]),
            None,
        );
        assert_eq!(
            (
                row.acknowledged,
                row.voice,
                row.delivered_live,
                row.recovered,
                row.stored,
                row.transcribed
            ),
            (3, 1, 3, 0, 3, 1)
        );
        assert!(row.lost.is_empty() && row.duplicated.is_empty() && row.orphans.is_empty());
    }

    #[test]
    fn missing_anywhere_is_lost_and_twice_anywhere_is_duplicated() {
        let one = Received {
            live: ids(&["a", "b"]),
            recovered: ids(&["c", "b"]),
            ..Default::default()
        };
        let two = Received {
            live: ids(&["a", "b", "c", "d"]),
            ..Default::default()
        };
        // d never reached subscriber one; history lacks b and lists a twice.
        let row = tally(
            "f",
            &acked(&["a", "b", "c", "d"], &[]),
            &[one, two],
            &history(&["a", "a", "c", "d"], &[]),
            None,
        );
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
    fn a_transcript_missing_or_twice_is_lost_or_duplicated() {
        let one = Received {
            live: ids(&["v", "w"]),
            transcribed: ids(&["v", "v"]),
            ..Default::default()
        };
        let two = Received {
            live: ids(&["v", "w"]),
            transcribed: ids(&["v", "w"]),
            ..Default::default()
        };
        // w's transcript never reached subscriber one, v's reached it twice; history lacks
        // v's.
        let row = tally(
            "f",
            &acked(&[], &["v", "w"]),
            &[one, two],
            &history(&["v", "w"], &["w"]),
            None,
        );
        assert_eq!(row.lost, ids(&["v transcript", "w transcript"]));
        assert_eq!(row.duplicated, ids(&["v transcript"]));
        assert_eq!((row.stored, row.transcribed), (2, 0));
    }

    #[test]
    fn anything_stored_or_delivered_but_never_acknowledged_is_an_orphan() {
        // Senders retry until acknowledged, so x and y were sends that failed and yet left a
        // message behind: x stored, y delivered.
        let s = Received {
            live: ids(&["a", "y"]),
            ..Default::default()
        };
        let row = tally(
            "f",
            &acked(&["a"], &[]),
            &[s],
            &history(&["a", "x"], &[]),
            None,
        );
        assert_eq!((row.acknowledged, row.stored), (1, 1));
        assert_eq!(row.orphans, ids(&["x", "y"]));
        assert!(row.lost.is_empty() && row.duplicated.is_empty());
    }
}
