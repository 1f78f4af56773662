//! Vectorised search for the bytes that matter in a frame head.
//!
//! One pass over 64 bytes yields four bitmasks (bit `i` set when byte `i` is that
//! character): LF, colon, backslash and CR. The decoder then walks set bits instead of
//! bytes. `wide` compiles this to SSE2 compares and `pmovmskb` on x86-64, with a portable
//! fallback elsewhere, and keeps this crate free of `unsafe`.

use wide::{CmpEq, i8x16};

/// Bytes covered by one [`Masks`].
pub(crate) const BLOCK: usize = 64;

/// Positions of the special bytes within one block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    pub(crate) lf: u64,
    pub(crate) colon: u64,
    pub(crate) backslash: u64,
    pub(crate) cr: u64,
}

/// The masks the fast path needs: LF, colon, and any CR or backslash (`dirty`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PlainMasks {
    pub(crate) lf: u64,
    pub(crate) colon: u64,
    pub(crate) dirty: u64,
}

/// Like [`block`], folding CR and backslash into one mask (one `pmovmskb` fewer per 16 bytes).
#[inline(always)]
pub(crate) fn plain_block(bytes: &[u8]) -> (PlainMasks, usize) {
    over_block(bytes, plain_masks)
}

/// Applies `scan` to the first [`BLOCK`] bytes of `bytes`, zero-padded when fewer remain
/// (zero is none of the special bytes); returns its result and how many bytes it covers.
#[inline(always)]
fn over_block<T>(bytes: &[u8], scan: impl Fn(&[u8; BLOCK]) -> T) -> (T, usize) {
    match bytes.first_chunk::<BLOCK>() {
        Some(full) => (scan(full), BLOCK),
        None => {
            let mut padded = [0u8; BLOCK];
            padded[..bytes.len()].copy_from_slice(bytes);
            (scan(&padded), bytes.len())
        }
    }
}

#[inline(always)]
fn plain_masks(block: &[u8; BLOCK]) -> PlainMasks {
    let lf = i8x16::splat(b'\n' as i8);
    let colon = i8x16::splat(b':' as i8);
    let backslash = i8x16::splat(b'\\' as i8);
    let cr = i8x16::splat(b'\r' as i8);
    let mut out = PlainMasks::default();
    for k in 0..BLOCK / 16 {
        let v = load(&block[k * 16..k * 16 + 16]);
        let shift = k * 16;
        out.lf |= bits(v.cmp_eq(lf)) << shift;
        out.colon |= bits(v.cmp_eq(colon)) << shift;
        out.dirty |= bits(v.cmp_eq(backslash) | v.cmp_eq(cr)) << shift;
    }
    out
}

/// Scans up to [`BLOCK`] bytes from the start of `bytes`; returns the masks and how many
/// bytes they cover.
#[inline]
pub(crate) fn block(bytes: &[u8]) -> (Masks, usize) {
    over_block(bytes, masks)
}

#[inline]
fn masks(block: &[u8; BLOCK]) -> Masks {
    let lf = i8x16::splat(b'\n' as i8);
    let colon = i8x16::splat(b':' as i8);
    let backslash = i8x16::splat(b'\\' as i8);
    let cr = i8x16::splat(b'\r' as i8);
    let mut out = Masks::default();
    for k in 0..BLOCK / 16 {
        let v = load(&block[k * 16..k * 16 + 16]);
        let shift = k * 16;
        out.lf |= bits(v.cmp_eq(lf)) << shift;
        out.colon |= bits(v.cmp_eq(colon)) << shift;
        out.backslash |= bits(v.cmp_eq(backslash)) << shift;
        out.cr |= bits(v.cmp_eq(cr)) << shift;
    }
    out
}

/// One 16-byte vector from a 16-byte slice (compiles to a single unaligned load).
#[inline]
fn load(chunk: &[u8]) -> i8x16 {
    let bytes: [u8; 16] = chunk.try_into().expect("16-byte chunk");
    i8x16::from(bytes.map(|b| b as i8))
}

#[inline]
fn bits(eq: i8x16) -> u64 {
    u64::from(eq.move_mask() as u16)
}

/// Bits `0..=i` of a mask (`i < 64`): a line's bytes up to and including its line feed.
#[inline(always)]
pub(crate) fn through(i: usize) -> u64 {
    (2u64 << i).wrapping_sub(1)
}

/// Whether `text` holds a byte a header writer must escape or refuse: `\\`, `:`, LF or CR.
///
/// Works 16 bytes at a time: header values are short, so a 64-byte block would mostly pad.
#[inline]
pub(crate) fn has_special(text: &[u8]) -> bool {
    let specials = [
        i8x16::splat(b'\n' as i8),
        i8x16::splat(b':' as i8),
        i8x16::splat(b'\\' as i8),
        i8x16::splat(b'\r' as i8),
    ];
    let hit = |v: i8x16| {
        let any = v.cmp_eq(specials[0])
            | v.cmp_eq(specials[1])
            | v.cmp_eq(specials[2])
            | v.cmp_eq(specials[3]);
        any.move_mask() != 0
    };
    let mut chunks = text.chunks_exact(16);
    if chunks.by_ref().any(|chunk| hit(load(chunk))) {
        return true;
    }
    let rest = chunks.remainder();
    let mut padded = [0u8; 16];
    padded[..rest.len()].copy_from_slice(rest);
    hit(load(&padded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(bytes: &[u8], c: u8) -> u64 {
        bytes
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, b)| **b == c)
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    #[test]
    fn masks_match_a_byte_by_byte_scan() {
        let text: Vec<u8> = (0..200u32)
            .map(|i| b"ab:\\\r\ncd"[(i * 7 % 8) as usize])
            .collect();
        for start in 0..text.len() {
            let (m, n) = block(&text[start..]);
            assert_eq!(n, (text.len() - start).min(64));
            assert_eq!(m.lf, naive(&text[start..], b'\n'));
            assert_eq!(m.colon, naive(&text[start..], b':'));
            assert_eq!(m.backslash, naive(&text[start..], b'\\'));
            assert_eq!(m.cr, naive(&text[start..], b'\r'));
        }
    }

    #[test]
    fn plain_masks_fold_cr_and_backslash() {
        let text = b"a:b\\c\rd\ne:::\\\r\n".repeat(9);
        for start in 0..text.len() {
            let (m, n) = block(&text[start..]);
            let (p, pn) = plain_block(&text[start..]);
            assert_eq!(
                (p.lf, p.colon, p.dirty, pn),
                (m.lf, m.colon, m.cr | m.backslash, n)
            );
        }
    }

    #[test]
    fn through_masks_bits_up_to_and_including_i() {
        assert_eq!(through(0), 1);
        assert_eq!(through(3), 0b1111);
        assert_eq!(through(63), u64::MAX);
    }

    #[test]
    fn high_bytes_are_not_special() {
        let (m, _) = block(&[0x8a, 0xba, 0xdc, 0x8d, 0xff]);
        assert_eq!(m, Masks::default());
    }

    #[test]
    fn has_special_finds_each_special_byte_anywhere() {
        assert!(!has_special(
            b"plain-value_123 with spaces and more than sixty-four bytes ........"
        ));
        for special in [b'\\', b':', b'\n', b'\r'] {
            for len in [1usize, 15, 16, 17, 64, 65, 130] {
                let mut v = vec![b'a'; len];
                v[len - 1] = special;
                assert!(has_special(&v), "{special} at {}", len - 1);
            }
        }
    }
}
