//! What a VNC viewer sends, read as it passes through the test virt-api: the keys typed,
//! so a test can tell that typing in the browser reached the VNC server. The stream is
//! copied unchanged; this only watches the client's half of RFB 3.7/3.8 (RFC 6143) with
//! security type None, plus the extensions noVNC speaks (QEMU extended key events,
//! continuous updates, fences, desktop size).

/// The client's half of an RFB session, read incrementally.
#[derive(Debug, Default)]
pub struct ClientReader {
    buf: Vec<u8>,
    /// The handshake's bytes still to come: version (12), security type (1), ClientInit (1).
    handshake_left: Option<usize>,
    /// Set once a message is not understood: nothing more is read.
    lost: bool,
}

/// The length of the client message at the start of `buf`, or `None` until enough of it
/// is there; `Err(())` for a message type this reader does not know.
fn message_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let need = |n: usize| Ok((buf.len() >= n).then_some(n));
    let u16_at = |i: usize| usize::from(u16::from_be_bytes([buf[i], buf[i + 1]]));
    match buf.first() {
        None => Ok(None),
        Some(0) => need(20),
        Some(2) if buf.len() < 4 => Ok(None),
        Some(2) => need(4 + 4 * u16_at(2)),
        Some(3) | Some(150) => need(10),
        Some(4) => need(8),
        Some(5) => need(6),
        Some(6) if buf.len() < 8 => Ok(None),
        // A negative length is the extended clipboard's (its payload is -length bytes).
        Some(6) => need(8 + i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]).unsigned_abs() as usize),
        Some(248) if buf.len() < 9 => Ok(None),
        Some(248) => need(9 + usize::from(buf[8])),
        Some(251) if buf.len() < 8 => Ok(None),
        Some(251) => need(8 + 16 * usize::from(buf[6])),
        Some(255) => need(12),
        Some(_) => Err(()),
    }
}

impl ClientReader {
    /// A reader at the start of a session.
    pub fn new() -> Self {
        Self {
            handshake_left: Some(14),
            ..Self::default()
        }
    }

    /// Reads `bytes` from the client; returns the keysyms pressed in them (key down).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u32> {
        if self.lost {
            return Vec::new();
        }
        self.buf.extend_from_slice(bytes);
        if let Some(left) = self.handshake_left {
            let taken = left.min(self.buf.len());
            self.buf.drain(..taken);
            self.handshake_left = (left > taken).then_some(left - taken);
            if self.handshake_left.is_some() {
                return Vec::new();
            }
        }
        let mut keys = Vec::new();
        loop {
            match message_len(&self.buf) {
                Ok(None) => return keys,
                Err(()) => {
                    self.lost = true;
                    self.buf.clear();
                    return keys;
                }
                Ok(Some(n)) => {
                    let m: Vec<u8> = self.buf.drain(..n).collect();
                    match m[0] {
                        4 if m[1] != 0 => keys.push(u32::from_be_bytes([m[4], m[5], m[6], m[7]])),
                        255 if m[1] == 0 && (m[2] != 0 || m[3] != 0) => {
                            keys.push(u32::from_be_bytes([m[4], m[5], m[6], m[7]]));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake() -> Vec<u8> {
        let mut h = b"RFB 003.008\n".to_vec();
        h.extend([1, 1]);
        h
    }

    #[test]
    fn keys_are_read_across_split_frames_and_past_other_messages() {
        let mut stream = handshake();
        stream.extend([2, 0, 0, 2, 0, 0, 0, 7, 0xff, 0xff, 0xfe, 0xfe]); // SetEncodings, 2
        stream.extend([3, 0, 0, 0, 0, 0, 3, 32, 2, 88]); // FramebufferUpdateRequest
        stream.extend([4, 1, 0, 0, 0, 0, 0, 0x61]); // 'a' down
        stream.extend([4, 0, 0, 0, 0, 0, 0, 0x61]); // 'a' up
        stream.extend([5, 0, 0, 10, 0, 20]); // pointer
        stream.extend([255, 0, 0, 1, 0, 0, 0xff, 0x0d, 0, 0, 0, 28]); // QEMU key: Return down
        stream.extend([6, 0, 0, 0, 0, 0, 0, 3, b'x', b'y', b'z']); // cut text
        stream.extend([6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 1]); // extended clipboard caps
        stream.extend([4, 1, 0, 0, 0, 0, 0, 0x62]); // 'b' down
        let mut reader = ClientReader::new();
        let mut keys = Vec::new();
        for chunk in stream.chunks(5) {
            keys.extend(reader.feed(chunk));
        }
        assert_eq!(keys, [0x61, 0xff0d, 0x62]);
    }

    #[test]
    fn an_unknown_message_stops_the_reading_without_inventing_keys() {
        let mut reader = ClientReader::new();
        let mut stream = handshake();
        stream.extend([77, 4, 1, 0, 0, 0, 0, 0x61]);
        assert!(reader.feed(&stream).is_empty());
        assert!(reader.feed(&[4, 1, 0, 0, 0, 0, 0, 0x61]).is_empty(), "lost for good");
    }
}
