//! Patterned payloads: byte `off` of stream `seed` is a function of both alone, so a
//! payload's byte at offset N is the same whichever test (or chunking) made it, and a
//! lost, repeated, shifted, truncated, reordered or crossed chunk shows up as mismatches.

/// Byte `off` of stream `seed`: a hash of both.
#[inline]
pub fn pattern_byte(seed: u64, off: u64) -> u8 {
    ((off ^ (seed << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// Fills `buf` with stream `seed`'s bytes starting at offset `off`.
pub fn fill_pattern(seed: u64, off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, off + i as u64);
    }
}

/// `len` bytes of stream `seed` from offset 0.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(seed, 0, &mut v);
    v
}

/// Checks a received stream against its pattern, chunk by chunk.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    pub seed: u64,
    pub received: u64,
    pub mismatches: u64,
    /// Offset of the first wrong byte.
    pub first_bad: Option<u64>,
}

impl Verifier {
    pub fn new(seed: u64) -> Self {
        Verifier {
            seed,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let off = self.received + i as u64;
            if b != pattern_byte(self.seed, off) {
                self.mismatches += 1;
                self.first_bad.get_or_insert(off);
            }
        }
        self.received += data.len() as u64;
    }

    /// Asserts that exactly `len` bytes arrived, all right.
    pub fn assert_complete(&self, len: u64, what: &str) {
        assert_eq!(
            (self.received, self.mismatches, self.first_bad),
            (len, 0, None),
            "{what}: received/mismatches/first bad offset"
        );
    }
}

/// A 64-bit FNV-1a checksum.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}
