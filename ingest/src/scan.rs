//! Finding the separators of a short span all at once.
//!
//! A syslog header and the first fields of a pipe line are a few bytes
//! each, so a call into a vector search per field (memchr) costs more than
//! the field itself. [`Separators`] looks at the first 64 bytes once,
//! eight at a time with plain integer operations, and keeps a bitmask of
//! where the separator is; each field after that is a `trailing_zeros`
//! away. Past those 64 bytes it falls back to memchr. Written by hand
//! because memchr answers one position per call and has no bitmask form.

/// Bytes covered by the bitmask.
const WINDOW: usize = 64;

/// Successive positions of one byte in a slice, in increasing order.
pub struct Separators<'a> {
    hay: &'a [u8],
    needle: u8,
    /// Bit `i` set: `hay[i] == needle`, for the positions not yet handed
    /// out below `scanned`.
    mask: u64,
    /// Positions below this are covered by `mask`; from here on, memchr.
    scanned: usize,
}

impl<'a> Separators<'a> {
    pub fn new(hay: &'a [u8], needle: u8) -> Self {
        let window = &hay[..hay.len().min(WINDOW)];
        let (words, tail) = window.as_chunks::<8>();
        let mut mask = 0u64;
        for (i, word) in words.iter().enumerate() {
            mask |= u64::from(matches_in_word(u64::from_le_bytes(*word), needle)) << (8 * i);
        }
        for (i, &b) in tail.iter().enumerate() {
            mask |= u64::from(b == needle) << (8 * words.len() + i);
        }
        Separators {
            hay,
            needle,
            mask,
            scanned: window.len(),
        }
    }
}

impl Iterator for Separators<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.mask != 0 {
            let at = self.mask.trailing_zeros() as usize;
            self.mask &= self.mask - 1;
            return Some(at);
        }
        let at = self.scanned + memchr::memchr(self.needle, &self.hay[self.scanned..])?;
        self.scanned = at + 1;
        Some(at)
    }
}

/// Bit `i` set when byte `i` (little-endian order) of `word` is `needle`.
fn matches_in_word(word: u64, needle: u8) -> u8 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (0x0101_0101_0101_0101 * u64::from(needle));
    // The high bit of each byte is set exactly when that byte of `x` is 0:
    // adding 0x7f carries into the high bit for any non-zero low bits.
    let zero = !((x & LOW7).wrapping_add(LOW7) | x | LOW7);
    // Gather the eight high bits into the top byte: each lands on its own
    // bit, and no two partial products overlap, so nothing carries.
    ((zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(hay: &[u8], needle: u8) -> Vec<usize> {
        (0..hay.len()).filter(|&i| hay[i] == needle).collect()
    }

    #[test]
    fn finds_across_the_window_edge() {
        let mut hay = vec![b'x'; 150];
        for at in [0, 7, 8, 63, 64, 65, 149] {
            hay[at] = b'|';
        }
        let found: Vec<usize> = Separators::new(&hay, b'|').collect();
        assert_eq!(found, [0, 7, 8, 63, 64, 65, 149]);
        assert_eq!(Separators::new(b"", b'|').next(), None);
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_loop(
            hay in proptest::collection::vec(
                prop_oneof![Just(b' '), Just(0x80u8), any::<u8>()],
                0..200,
            ),
            needle in prop_oneof![Just(b' '), Just(0u8), Just(0xffu8), any::<u8>()],
        ) {
            let found: Vec<usize> = Separators::new(&hay, needle).collect();
            prop_assert_eq!(found, naive(&hay, needle));
        }
    }
}
