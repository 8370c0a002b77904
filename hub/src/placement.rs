//! Where a channel's data lives when the Redis engine has several shards: one shard per
//! channel, picked by a stable hash, and (on Redis Cluster) one hash slot for all its keys.
//!
//! Centrifugo picks a shard the same way: FNV-1a of the channel name, then Jump Consistent
//! Hash (Lamping and Veach), so adding a shard moves only 1/n of the channels.

/// FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Jump Consistent Hash: a bucket in `0..buckets` for `key`.
pub fn jump(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// The shard of `channel` among `shards`.
pub fn shard_of(channel: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    jump(fnv1a(channel.as_bytes()), shards)
}

/// The Redis Cluster hash tag every key of `channel` carries: `{` 16 hex digits `}`. A hash
/// and not the name itself, since a name may hold braces that would cut the tag short.
pub fn hash_tag(channel: &str) -> String {
    format!("{{{:016x}}}", fnv1a(channel.as_bytes()))
}

/// The length of every [`hash_tag`].
pub const HASH_TAG_LEN: usize = 18;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_spread_over_every_shard_and_stay_put() {
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            counts[shard_of(&format!("chat:{i}"), 3)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
        assert_eq!(shard_of("chat:1", 3), shard_of("chat:1", 3));
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn a_new_shard_moves_only_channels_onto_itself() {
        let mut moved = 0;
        for i in 0..3000 {
            let ch = format!("c{i}");
            let (before, after) = (shard_of(&ch, 3), shard_of(&ch, 4));
            if before != after {
                assert_eq!(after, 3, "{ch} moved between old shards");
                moved += 1;
            }
        }
        assert!((600..900).contains(&moved), "{moved} of 3000 moved");
    }

    #[test]
    fn the_hash_tag_ignores_braces_in_the_name() {
        let t = hash_tag("a}{b");
        assert_eq!(t.len(), HASH_TAG_LEN);
        assert!(t.starts_with('{') && t.ends_with('}'));
        assert_eq!(t[1..17].find(['{', '}']), None);
    }
}
