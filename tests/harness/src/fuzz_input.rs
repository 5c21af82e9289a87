//! The fuzz targets' reader of the fuzzer's bytes (pkcs11/fuzz, provider/fuzz): front to
//! back, zeros once they run out, so that every input is a complete call sequence.

#[derive(Debug)]
pub struct FuzzInput<'a>(pub &'a [u8]);

impl<'a> FuzzInput<'a> {
    pub fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    /// Little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next `n` bytes (fewer when the input ends).
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }

    /// A length-prefixed byte string: one length byte; 0xff: a little-endian u16 follows.
    pub fn blob(&mut self) -> Vec<u8> {
        let n = match self.u8() {
            0xff => usize::from(u16::from_le_bytes([self.u8(), self.u8()])),
            n => usize::from(n),
        };
        self.bytes(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_as_zeros() {
        let mut input = FuzzInput(&[3, 1, 2, 3, 0xff, 1, 0, 9, 7]);
        assert_eq!(input.blob(), vec![1, 2, 3]);
        assert_eq!(input.blob(), vec![9]);
        assert_eq!(input.u32(), 7);
        assert!(input.is_empty());
        assert_eq!(input.blob(), Vec::<u8>::new());
    }
}
