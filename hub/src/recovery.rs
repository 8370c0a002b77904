//! Recovery, decided in one place: whether a client's stream position (`offset`, `epoch`) can
//! be continued, and what its subscribe reply says (`recovered`). Pure functions, used by both
//! engines (the memory broker with its stream in hand; the Redis broker with the facts
//! `history.lua` reads atomically) and by the subscribe pipeline (`client/subscribe.rs`), as
//! Centrifuge keeps `internal/recovery`.

use chorus_protocol::frame::StreamPosition;

/// What a channel's stream knows of itself when a client asks to continue from a position.
#[derive(Debug, Clone, Copy)]
pub struct StreamState<'a> {
    pub epoch: &'a str,
    /// The offset of the newest publication (0 for none yet).
    pub top: u64,
    /// Publications at or below this offset may be gone (trimmed or expired), so a position
    /// below it cannot be continued.
    pub gap_below: u64,
    /// The stream is positioned by a source (a Kafka partition) whose reader knows where this
    /// run began: a client ahead of it saw records an earlier run delivered, not yet re-read.
    pub sourced: bool,
}

/// How a position continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// The client missed exactly the publications after `after`; the stream's position to
    /// report is `top` (raised to the client's offset when a sourced stream is behind it).
    After { after: u64, top: u64 },
    /// Another epoch, a position this stream never reached, or one fallen into a gap.
    Unrecoverable,
}

/// Whether the publications after `since` are all still held, so a client at `since` can be
/// brought up to date without a gap.
pub fn continue_from(stream: &StreamState<'_>, since: &StreamPosition) -> Continuation {
    if since.epoch != stream.epoch {
        return Continuation::Unrecoverable;
    }
    if since.offset > stream.top {
        // Only a stream that knows where this run began reading can tell nothing is missing:
        // what follows will come live.
        return if stream.sourced {
            Continuation::After {
                after: since.offset,
                top: since.offset,
            }
        } else {
            Continuation::Unrecoverable
        };
    }
    // Everything after `since` must still be held, else there is a gap.
    if since.offset < stream.gap_below && since.offset < stream.top {
        return Continuation::Unrecoverable;
    }
    Continuation::After {
        after: since.offset,
        top: stream.top,
    }
}

/// What a recovering subscribe ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// `recovered: true`, with every missed publication in the reply.
    Recovered,
    /// `recovered: false`: the client starts from the current position and must reload.
    Unrecovered,
    /// The client asked to be refused rather than left unrecovered: error 112.
    Refused,
}

/// The outcome for a client that asked to recover: `continued` says whether its position could
/// be continued, `missed` how many publications it missed; more than `max`
/// (`recovery_max_publication_limit`) do not fit in one reply.
pub fn decide(continued: bool, missed: usize, max: usize, reject_unrecovered: bool) -> Recovery {
    if continued && missed <= max {
        Recovery::Recovered
    } else if reject_unrecovered {
        Recovery::Refused
    } else {
        Recovery::Unrecovered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64, epoch: &str) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: epoch.into(),
        }
    }

    const STREAM: StreamState<'static> = StreamState {
        epoch: "e1",
        top: 10,
        gap_below: 4,
        sourced: false,
    };

    #[test]
    fn a_held_position_continues_after_itself() {
        for since in [4, 7, 10] {
            assert_eq!(
                continue_from(&STREAM, &at(since, "e1")),
                Continuation::After {
                    after: since,
                    top: 10
                },
                "since {since}"
            );
        }
    }

    #[test]
    fn another_epoch_a_gap_or_a_future_offset_cannot_continue() {
        assert_eq!(
            continue_from(&STREAM, &at(7, "e0")),
            Continuation::Unrecoverable
        );
        assert_eq!(
            continue_from(&STREAM, &at(3, "e1")),
            Continuation::Unrecoverable
        );
        assert_eq!(
            continue_from(&STREAM, &at(11, "e1")),
            Continuation::Unrecoverable
        );
    }

    #[test]
    fn an_empty_stream_continues_from_zero_even_below_its_gap() {
        let empty = StreamState {
            top: 0,
            gap_below: 5,
            ..STREAM
        };
        assert_eq!(
            continue_from(&empty, &at(0, "e1")),
            Continuation::After { after: 0, top: 0 }
        );
    }

    #[test]
    fn a_sourced_stream_behind_its_client_vouches_for_it() {
        let sourced = StreamState {
            sourced: true,
            ..STREAM
        };
        assert_eq!(
            continue_from(&sourced, &at(15, "e1")),
            Continuation::After { after: 15, top: 15 }
        );
        assert_eq!(
            continue_from(&sourced, &at(15, "e2")),
            Continuation::Unrecoverable
        );
    }

    #[test]
    fn recovered_only_when_continued_and_the_missed_fit_one_reply() {
        assert_eq!(decide(true, 0, 100, false), Recovery::Recovered);
        assert_eq!(decide(true, 100, 100, true), Recovery::Recovered);
        assert_eq!(decide(true, 101, 100, false), Recovery::Unrecovered);
        assert_eq!(decide(false, 0, 100, false), Recovery::Unrecovered);
        assert_eq!(decide(false, 0, 100, true), Recovery::Refused);
        assert_eq!(decide(true, 101, 100, true), Recovery::Refused);
    }
}
