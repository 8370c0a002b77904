//! The subscribers of one channel on this node.
//!
//! Most channels are small (a user's personal channel, a chat of a few members), so they
//! keep their subscribers in an exactly-sized vector: one subscriber costs 32 bytes rather
//! than a hash table's minimum of four buckets plus control bytes. Past [`SMALL`] subscribers
//! a linear removal would be too slow for a broadcast channel, and the set becomes a map.

use std::collections::{hash_map, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use chorus_protocol::filter::FilterNode;

use crate::client::ClientHandle;

/// Largest set kept as a vector.
const SMALL: usize = 32;

pub struct Subscriber {
    pub client: Arc<ClientHandle>,
    /// Set while the subscription is being set up: deliveries go through the sync buffer.
    pub syncing: bool,
    /// Whether this subscriber receives join/leave pushes.
    pub join_leave: bool,
    /// Whether the client tracks the stream position (offset and epoch): then a publication
    /// it missed must end in a recovery, never a silent gap.
    pub positioned: bool,
    /// Negotiated delta compression: publications go as deltas against the previous one.
    pub delta: bool,
    /// For a delta subscriber: it got the channel's previous publication, so the next one
    /// may be a delta against it. Cleared when it misses one (held back, skipped).
    pub delta_ready: AtomicBool,
    /// The last offset this subscriber has: publications at or below it are not sent. Set
    /// to the stream's top when the subscription is set up (a returning client may be ahead
    /// of what a restarted hub has re-read from Kafka, see `broker::SourcePosition`), and
    /// advanced by each delivery to a positioned subscriber.
    pub floor: AtomicU64,
    /// The periodic position check found this subscriber behind the stream's top holding
    /// `behind - 1`; still there at the next check, it missed the tail and must recover.
    /// 0: not behind.
    pub behind: AtomicU64,
    /// Only publications whose tags pass this (`tf`, where `allow_tags_filter`); the others
    /// are skipped but still move `floor`, so they are not a gap.
    pub filter: Option<Arc<FilterNode>>,
}

/// Subscribers keyed by the client's node-local sequence number.
pub enum Subscribers {
    Small(Vec<(u64, Subscriber)>),
    Large(HashMap<u64, Subscriber>),
}

impl Default for Subscribers {
    fn default() -> Self {
        Subscribers::Small(Vec::new())
    }
}

impl Subscribers {
    /// Adds or replaces the subscriber `seq`.
    pub fn insert(&mut self, seq: u64, sub: Subscriber) {
        match self {
            Subscribers::Small(v) => {
                if let Some(slot) = v.iter_mut().find(|(k, _)| *k == seq) {
                    slot.1 = sub;
                } else if v.len() < SMALL {
                    v.reserve_exact(1);
                    v.push((seq, sub));
                } else {
                    let mut map: HashMap<u64, Subscriber> = v.drain(..).collect();
                    map.insert(seq, sub);
                    *self = Subscribers::Large(map);
                }
            }
            Subscribers::Large(m) => {
                m.insert(seq, sub);
            }
        }
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Subscriber> {
        match self {
            Subscribers::Small(v) => v.iter_mut().find(|(k, _)| *k == seq).map(|(_, s)| s),
            Subscribers::Large(m) => m.get_mut(&seq),
        }
    }

    /// Removes `seq`; returns whether it was there.
    pub fn remove(&mut self, seq: u64) -> bool {
        match self {
            Subscribers::Small(v) => match v.iter().position(|(k, _)| *k == seq) {
                Some(i) => {
                    v.swap_remove(i);
                    v.shrink_to_fit();
                    true
                }
                None => false,
            },
            Subscribers::Large(m) => {
                let removed = m.remove(&seq).is_some();
                // Half the threshold, so a set hovering at the edge does not flip every time.
                if m.len() < SMALL / 2 {
                    let mut v: Vec<_> = m.drain().collect();
                    v.shrink_to_fit();
                    *self = Subscribers::Small(v);
                }
                removed
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Subscribers::Small(v) => v.len(),
            Subscribers::Large(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn values(&self) -> Values<'_> {
        match self {
            Subscribers::Small(v) => Values::Small(v.iter()),
            Subscribers::Large(m) => Values::Large(m.values()),
        }
    }
}

pub enum Values<'a> {
    Small(std::slice::Iter<'a, (u64, Subscriber)>),
    Large(hash_map::Values<'a, u64, Subscriber>),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a Subscriber;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Values::Small(it) => it.next().map(|(_, s)| s),
            Values::Large(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(seq: u64) -> Subscriber {
        Subscriber {
            client: Arc::new(ClientHandle::new(format!("c{seq}").into(), 1024)),
            syncing: false,
            join_leave: false,
            positioned: false,
            delta: false,
            delta_ready: AtomicBool::new(false),
            floor: AtomicU64::new(0),
            behind: AtomicU64::new(0),
            filter: None,
        }
    }

    #[test]
    fn grows_into_a_map_and_shrinks_back_without_losing_anyone() {
        let mut s = Subscribers::default();
        for seq in 0..100 {
            s.insert(seq, sub(seq));
        }
        assert!(matches!(s, Subscribers::Large(_)));
        assert_eq!(s.len(), 100);
        // Replacing keeps the count.
        s.insert(7, sub(7));
        assert_eq!(s.len(), 100);
        for seq in 0..90 {
            assert!(s.remove(seq));
        }
        assert!(!s.remove(5));
        assert!(matches!(s, Subscribers::Small(_)));
        assert_eq!(s.len(), 10);
        assert_eq!(s.values().count(), 10);
        for seq in 90..100 {
            assert!(s.get_mut(seq).is_some(), "subscriber {seq} lost");
        }
        assert!(s.get_mut(5).is_none());
    }
}
