//! Voice clips in, 16 kHz mono out. The API decodes an upload fully before accepting it (so a
//! corrupt file is refused at the door and the duration is exact); the transcriber decodes it
//! again for the model.
//!
//! | module | concept |
//! |---|---|
//! | [`sniff`] | which container a file is, from its first bytes |
//! | [`decode`] | container and codec to mono samples (symphonia; libopus for Opus) |
//! | [`resample`] | any rate to Whisper's 16 kHz |

pub mod decode;
pub mod resample;
pub mod sniff;

pub use decode::{decode, AudioError, Decoded};
pub use resample::to_whisper_rate;
pub use sniff::Container;
