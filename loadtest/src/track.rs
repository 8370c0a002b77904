//! Per-connection bookkeeping of sequence numbers: which arrived, which twice, which late.
//!
//! A bitset per connection keeps the counts exact even if delivery were reordered, so a
//! duplicate is never mistaken for a late message or the other way round.

/// What one connection received on its channel.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Whether the connection subscribed; only subscribed connections are owed deliveries.
    pub subscribed: bool,
    seen: Vec<u64>,
    highest: u64,
    /// Distinct sequence numbers received.
    pub received: u64,
    /// Sequence numbers received more than once (each extra copy counts).
    pub duplicated: u64,
    /// Arrivals below the highest sequence number seen so far.
    pub reordered: u64,
}

impl Tracker {
    /// Records sequence number `seq` (from 1). Returns false if it was a duplicate.
    pub fn record(&mut self, seq: u64) -> bool {
        let Ok(bit) = usize::try_from(seq) else {
            self.duplicated += 1;
            return false;
        };
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & mask != 0 {
            self.duplicated += 1;
            return false;
        }
        self.seen[word] |= mask;
        self.received += 1;
        if seq < self.highest {
            self.reordered += 1;
        }
        self.highest = self.highest.max(seq);
        true
    }

    /// Messages published to the channel (sequence 1..=published) that never arrived.
    pub fn lost(&self, published: u64) -> u64 {
        let in_range = (1..=published)
            .filter(|&s| {
                let bit = usize::try_from(s).unwrap_or(usize::MAX);
                self.seen
                    .get(bit / 64)
                    .is_some_and(|w| w & (1 << (bit % 64)) != 0)
            })
            .count() as u64;
        published - in_range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let mut t = Tracker::default();
        for s in [1, 2, 4, 3, 4, 7] {
            t.record(s);
        }
        assert_eq!(t.received, 5);
        assert_eq!(t.duplicated, 1);
        assert_eq!(t.reordered, 1);
        // 5 and 6 never came, 8 was published but not delivered either.
        assert_eq!(t.lost(8), 3);
        assert_eq!(t.lost(0), 0);
    }

    #[test]
    fn a_clean_run_loses_nothing() {
        let mut t = Tracker::default();
        for s in 1..=300 {
            assert!(t.record(s));
        }
        assert_eq!(
            (t.received, t.duplicated, t.reordered, t.lost(300)),
            (300, 0, 0, 0)
        );
    }
}
