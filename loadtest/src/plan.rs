//! Turns a scenario into channels and the channel each connection subscribes to.

use crate::cli::{RunArgs, Scenario};

/// The channel layout of a run.
#[derive(Debug, Clone)]
pub struct Layout {
    pub channels: Vec<String>,
    /// Channel index per connection.
    pub assignment: Vec<u32>,
}

impl Layout {
    /// Subscribers per channel.
    pub fn members(&self) -> Vec<u64> {
        let mut m = vec![0u64; self.channels.len()];
        for &c in &self.assignment {
            m[c as usize] += 1;
        }
        m
    }
}

/// Builds the layout; rooms are drawn from a seeded generator so every process agrees.
pub fn layout(scenario: Scenario, args: &RunArgs) -> Layout {
    let n = args.connections;
    let prefix = &args.channel_prefix;
    match scenario {
        Scenario::Idle => {
            let k = args.channels.unwrap_or(n).clamp(1, n.max(1));
            Layout {
                channels: (0..k).map(|i| format!("{prefix}-idle-{i}")).collect(),
                assignment: (0..n).map(|i| (i % k) as u32).collect(),
            }
        }
        Scenario::Broadcast => Layout {
            channels: vec![format!("{prefix}-broadcast")],
            assignment: vec![0; n],
        },
        Scenario::Rooms => rooms(n, args.room_min, args.room_max, args.seed, prefix),
    }
}

fn rooms(n: usize, min: usize, max: usize, seed: u64, prefix: &str) -> Layout {
    let min = min.max(1);
    let max = max.max(min);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sizes = Vec::new();
    let mut left = n;
    while left > 0 {
        let size = rng.usize(min..=max).min(left);
        sizes.push(size);
        left -= size;
    }
    // A short last room joins the previous one rather than break the size range.
    if sizes.len() > 1 && sizes.last().is_some_and(|&s| s < min) {
        let last = sizes.pop().unwrap_or(0);
        if let Some(prev) = sizes.last_mut() {
            *prev += last;
        }
    }
    // Members of one room are spread over the connection range, so each room spans workers
    // and hub nodes the way a real chat's members do.
    let rooms = sizes.len();
    let mut slots: Vec<u32> = sizes
        .iter()
        .enumerate()
        .flat_map(|(r, &s)| std::iter::repeat_n(r as u32, s))
        .collect();
    rng.shuffle(&mut slots);
    Layout {
        channels: (0..rooms).map(|i| format!("{prefix}-room-{i}")).collect(),
        assignment: slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_cover_every_connection_within_the_size_range() {
        let l = rooms(1000, 2, 50, 7, "t");
        assert_eq!(l.assignment.len(), 1000);
        let members = l.members();
        assert!(
            members.iter().all(|&m| (2..=100).contains(&m)),
            "{members:?}"
        );
        assert_eq!(members.iter().sum::<u64>(), 1000);
        // The same seed gives the same layout in every process.
        assert_eq!(rooms(1000, 2, 50, 7, "t").assignment, l.assignment);
    }
}
