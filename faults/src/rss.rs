//! Whether a series of resident-memory samples is flat after its warm-up: the soak's verdict.
//!
//! The first third of the run is warm-up (pools filling, the model loading, caches reaching
//! their size). Of the rest, the mean of the last quarter is compared with the mean of the
//! first quarter: a leak shows as a steady climb between the two, while allocator noise
//! averages out. Growth within 5% or 8 MiB, whichever is larger, counts as flat.

/// The verdict on one process's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flatness {
    /// Mean resident bytes just after warm-up.
    pub start: f64,
    /// Mean resident bytes at the end.
    pub end: f64,
    pub flat: bool,
}

/// Growth allowed however small the process: allocator arenas come and go in steps.
const SLACK_BYTES: f64 = 8.0 * 1024.0 * 1024.0;

pub fn flatness(samples: &[u64]) -> Flatness {
    let after = &samples[samples.len() / 3..];
    let quarter = (after.len() / 4).max(1);
    let mean = |s: &[u64]| s.iter().map(|&b| b as f64).sum::<f64>() / s.len().max(1) as f64;
    let start = mean(&after[..quarter.min(after.len())]);
    let end = mean(&after[after.len().saturating_sub(quarter)..]);
    Flatness {
        start,
        end,
        flat: end - start <= (start * 0.05).max(SLACK_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn warm_up_growth_and_noise_are_flat() {
        // Climbs during warm-up, then wobbles around 100 MiB.
        let mut s: Vec<u64> = (0..20).map(|i| 40 * MIB + i * 3 * MIB).collect();
        s.extend((0..40).map(|i| 100 * MIB + (i % 3) * MIB));
        let f = flatness(&s);
        assert!(f.flat, "{f:?}");
        assert!((f.start - f.end).abs() < 2.0 * MIB as f64, "{f:?}");
    }

    #[test]
    fn a_steady_climb_after_warm_up_is_growth() {
        // 1 MiB a sample after warm-up: 40 MiB over the measured part.
        let s: Vec<u64> = (0..60).map(|i| 100 * MIB + i * MIB).collect();
        let f = flatness(&s);
        assert!(!f.flat, "{f:?}");
        assert!(f.end - f.start > 20.0 * MIB as f64, "{f:?}");
    }

    #[test]
    fn a_small_process_gets_the_slack() {
        // 10 MiB growing by 6 MiB: 60%, but within the 8 MiB a small process is allowed.
        let mut s = vec![10 * MIB; 30];
        s.extend(vec![16 * MIB; 30]);
        assert!(flatness(&s).flat);
        s.extend(vec![30 * MIB; 30]);
        assert!(!flatness(&s).flat);
    }
}
