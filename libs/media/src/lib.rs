//! `chorus-media`: what the API and the transcriber both do with uploads, without Whisper.
//! The API decodes a voice upload fully before accepting it (a corrupt file is refused at the
//! door and the duration is exact) and stores it; the transcriber reads it back and decodes it
//! again for the model.
//!
//! | module | concept |
//! |---|---|
//! | [`audio`] | sniffing, decoding and resampling voice clips |
//! | [`store`] | the object store uploads live in: the local filesystem, or S3 ([`store::Blobs`]) |

pub mod audio;
pub mod store;
