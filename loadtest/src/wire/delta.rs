//! The client side of fossil delta compression: the last document of the channel, and the
//! next one from a delta against it or whole.

use crate::payload::Payload;

#[derive(Default)]
pub struct Base {
    doc: Vec<u8>,
}

impl Base {
    /// The document a publication carries: `data` applied to the base when `delta`, else
    /// `data` itself; it becomes the next base.
    pub fn next(&mut self, data: &[u8], delta: bool) -> Result<Payload, String> {
        let doc = if delta {
            chorus_protocol::fossil::apply(&self.doc, data)
                .map_err(|e| format!("bad delta: {e}"))?
        } else {
            data.to_vec()
        };
        let payload = serde_json::from_slice(&doc).map_err(|e| format!("document: {e}"))?;
        self.doc = doc;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_deltas_to_the_last_document() {
        let mut b = Base::default();
        let one = br#"{"t":1,"s":1,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        let two = br#"{"t":2,"s":2,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        assert_eq!(b.next(one, false).unwrap(), Payload { t: 1, s: 1 });
        let d = chorus_protocol::fossil::delta(one, two);
        assert_eq!(b.next(&d, true).unwrap(), Payload { t: 2, s: 2 });
        assert!(b.next(b"garbage;", true).is_err());
    }
}
