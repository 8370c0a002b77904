//! Image attachments: thumbnails made off the text path, by a second worker beside the
//! transcriber on the image topic.
//!
//! | module | concept |
//! |---|---|
//! | [`thumbnail`] | bounded decode (dimensions checked before any pixel is decoded), EXIF orientation, a JPEG thumbnail without metadata |

pub mod thumbnail;
