//! WebSocket framing (RFC 6455) for servers that write their own frames: the hub's client
//! connections and the load harness's floor server. Client frames are parsed from whatever
//! bytes have arrived, without blocking and without copying; server frames are an unmasked
//! header before the payload, so a publication can be framed once and written to every
//! subscriber as it is.

/// Opcodes.
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The largest frame header a server writes: two bytes and a 64-bit length.
pub const MAX_HEADER: usize = 10;

/// A control frame's payload is at most this long (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Close codes this module's users send.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// The header of a client frame, as found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFrame {
    pub fin: bool,
    pub opcode: u8,
    pub mask: [u8; 4],
    /// Header bytes: where the payload starts.
    pub header_len: usize,
    pub payload_len: usize,
}

impl ClientFrame {
    /// Bytes the whole frame takes.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("client frame is not masked")]
    Unmasked,
    #[error("reserved bits set without an extension")]
    Reserved,
    #[error("unknown opcode {0:#x}")]
    Opcode(u8),
    #[error("control frame fragmented or longer than 125 bytes")]
    Control,
    #[error("frame payload of {0} bytes is over the limit")]
    TooBig(u64),
}

/// The header of the first frame in `buf`; `Ok(None)` until all of the header has arrived.
/// The payload may still be incomplete: compare [`ClientFrame::frame_len`] with what is buffered.
/// A payload longer than `max_payload` is refused from its header alone, before it arrives.
pub fn parse_client_frame(
    buf: &[u8],
    max_payload: usize,
) -> Result<Option<ClientFrame>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(FrameError::Opcode(opcode));
    }
    // Every client frame is masked (RFC 6455 §5.3); a server closes on one that is not.
    if b1 & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let (len, at): (u64, usize) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode & 0x8 != 0 && (!fin || len > MAX_CONTROL_PAYLOAD) {
        return Err(FrameError::Control);
    }
    let payload_len = match usize::try_from(len) {
        Ok(n) if n <= max_payload => n,
        _ => return Err(FrameError::TooBig(len)),
    };
    let Some(m) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(ClientFrame {
        fin,
        opcode,
        mask: [m[0], m[1], m[2], m[3]],
        header_len: at + 4,
        payload_len,
    }))
}

/// Removes (or applies: it is its own inverse) the client's mask, in place.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The header of a final, unmasked server frame: the bytes, and how many of them are used.
pub fn header(opcode: u8, payload_len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut h = [0u8; MAX_HEADER];
    h[0] = 0x80 | opcode;
    let used = match payload_len {
        n if n < 126 => {
            h[1] = n as u8;
            2
        }
        n if n <= usize::from(u16::MAX) => {
            h[1] = 126;
            h[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        }
        n => {
            h[1] = 127;
            h[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        }
    };
    (h, used)
}

/// A whole server frame: header and payload in one buffer, ready to be written as it is.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let (h, used) = header(opcode, payload.len());
    let mut out = Vec::with_capacity(used + payload.len());
    out.extend_from_slice(&h[..used]);
    out.extend_from_slice(payload);
    out
}

/// A close frame with `code` and as much of `reason` as fits a control frame (whole
/// characters only).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD as usize - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(OP_CLOSE, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A client frame as a browser would send it.
    fn masked(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let (h, used) = header(opcode, payload.len());
        let mut out = h[..used].to_vec();
        if !fin {
            out[0] &= 0x7f;
        }
        out[1] |= 0x80;
        out.extend_from_slice(&mask);
        let mut body = payload.to_vec();
        unmask(&mut body, mask);
        out.extend(body);
        out
    }

    #[test]
    fn a_header_is_found_only_once_it_has_all_arrived() {
        let payload = vec![7u8; 300];
        let wire = masked(true, OP_TEXT, &payload, [1, 2, 3, 4]);
        for cut in 0..8 {
            assert_eq!(
                parse_client_frame(&wire[..cut], 1000),
                Ok(None),
                "cut at {cut}"
            );
        }
        let f = parse_client_frame(&wire[..8], 1000)
            .expect("valid")
            .expect("header complete");
        assert_eq!(
            (f.fin, f.opcode, f.header_len, f.payload_len),
            (true, OP_TEXT, 8, 300)
        );
        assert_eq!(f.frame_len(), wire.len());
    }

    #[test]
    fn what_a_server_must_refuse_is_refused() {
        let mut unmasked = masked(true, OP_TEXT, b"a", [0; 4]);
        unmasked[1] &= 0x7f;
        assert_eq!(parse_client_frame(&unmasked, 10), Err(FrameError::Unmasked));
        let mut reserved = masked(true, OP_TEXT, b"a", [0; 4]);
        reserved[0] |= 0x40;
        assert_eq!(parse_client_frame(&reserved, 10), Err(FrameError::Reserved));
        let odd = masked(true, 0x3, b"a", [0; 4]);
        assert_eq!(parse_client_frame(&odd, 10), Err(FrameError::Opcode(3)));
        let split_ping = masked(false, OP_PING, b"a", [0; 4]);
        assert_eq!(
            parse_client_frame(&split_ping, 10),
            Err(FrameError::Control)
        );
        let long_ping = masked(true, OP_PING, &[0; 126], [0; 4]);
        assert_eq!(
            parse_client_frame(&long_ping, 1000),
            Err(FrameError::Control)
        );
        // Refused from the header alone: the 2^63-byte payload never has to arrive.
        let huge = [0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            parse_client_frame(&huge, 1 << 20),
            Err(FrameError::TooBig(_))
        ));
        let over = masked(true, OP_BINARY, &[0; 11], [0; 4]);
        assert_eq!(parse_client_frame(&over, 10), Err(FrameError::TooBig(11)));
    }

    #[test]
    fn a_close_reason_is_cut_to_fit_on_a_character_boundary() {
        let reason = "é".repeat(100);
        let f = close_frame(3000, &reason);
        assert_eq!(usize::from(f[1]), f.len() - 2);
        assert!(f.len() - 2 <= 125);
        assert_eq!(u16::from_be_bytes([f[2], f[3]]), 3000);
        assert!(std::str::from_utf8(&f[4..]).is_ok());
    }

    proptest! {
        #[test]
        fn every_frame_reads_back(
            payload in proptest::collection::vec(any::<u8>(), 0..70_000),
            opcode in prop_oneof![Just(OP_TEXT), Just(OP_BINARY), Just(OP_CONTINUATION)],
            fin: bool,
            mask: [u8; 4],
        ) {
            let wire = masked(fin, opcode, &payload, mask);
            let f = parse_client_frame(&wire, 1 << 20).unwrap().unwrap();
            prop_assert_eq!((f.fin, f.opcode, f.frame_len()), (fin, opcode, wire.len()));
            let mut body = wire[f.header_len..].to_vec();
            unmask(&mut body, f.mask);
            prop_assert_eq!(body, payload);
        }

        #[test]
        fn a_server_header_states_its_length(len in 0usize..200_000) {
            let (h, used) = header(OP_TEXT, len);
            let stated = match h[1] {
                126 => usize::from(u16::from_be_bytes([h[2], h[3]])),
                127 => u64::from_be_bytes(h[2..10].try_into().unwrap()) as usize,
                n => usize::from(n),
            };
            prop_assert_eq!(stated, len);
            prop_assert_eq!(used, match len { 0..=125 => 2, 126..=65535 => 4, _ => 10 });
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panicking(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some(f)) = parse_client_frame(&buf, 1 << 16) {
                prop_assert!(f.payload_len <= 1 << 16);
                prop_assert!(f.header_len >= 6);
            }
        }
    }
}
