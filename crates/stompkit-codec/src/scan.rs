//! Vectorised search for the bytes that matter in a frame head.
//!
//! One pass over 64 bytes yields four bitmasks (bit `i` set when byte `i` is that
//! character): LF, colon, backslash and CR. The decoder then walks set bits instead of
//! bytes. `wide` compiles this to SSE2 compares and `pmovmskb` on x86-64, with a portable
//! fallback elsewhere, and keeps this crate free of `unsafe`.

use wide::{CmpEq, i8x16, u8x16};

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

/// The last bytes of a buffer, fewer than [`BLOCK`], padded to a block with `pad` (a byte
/// the scan does not look for). Every head that ends near the end of the buffer (a frame
/// per read) comes here once. Each caller picks whole or padded block itself (the fast path
/// in `decode.rs`, [`block`] here), which keeps the fast path's scan inlined.
#[inline]
pub(crate) fn padded(bytes: &[u8], pad: u8) -> [u8; BLOCK] {
    let mut block = [pad; BLOCK];
    block[..bytes.len()].copy_from_slice(bytes);
    block
}

/// For the fast path: the positions of every byte that can end a plain header line or
/// make it not plain, in one mask: control bytes up to CR (`\t`, `\n`, `\r`, NUL, ...) and
/// backslashes. The fast path reads a set bit as a line end only where the byte is a line
/// feed, and leaves the frame to the careful path otherwise. The last bytes of a buffer come
/// here [`padded`] with a space.
#[inline(always)]
pub(crate) fn line_end_bits(block: &[u8; BLOCK]) -> u64 {
    let cr = u8x16::splat(b'\r');
    let backslash = u8x16::splat(b'\\');
    let mut out = 0u64;
    for k in 0..BLOCK / 16 {
        let bytes: [u8; 16] = block[k * 16..k * 16 + 16]
            .try_into()
            .expect("16-byte chunk");
        let v = u8x16::from(bytes);
        // `min(v, CR) == v` is `v <= CR`, one compare for every control byte up to CR.
        let special = v.min(cr).cmp_eq(v) | v.cmp_eq(backslash);
        out |= u64::from(special.move_mask() as u16) << (k * 16);
    }
    out
}

/// Positions of the line feeds among the 16 bytes of `chunk` (bit `i` for byte `i`).
#[inline(always)]
pub(crate) fn line_feeds16(chunk: &[u8; 16]) -> u32 {
    u32::from(bits(load(chunk).cmp_eq(i8x16::splat(b'\n' as i8))))
}

/// Positions of the colons among the first 16 bytes of `chunk` (bit `i` for byte `i`).
#[inline(always)]
pub(crate) fn colons16(chunk: &[u8]) -> u32 {
    u32::from(bits(load(chunk).cmp_eq(i8x16::splat(b':' as i8))))
}

/// Scans up to [`BLOCK`] bytes from the start of `bytes`; returns the masks and how many
/// bytes they cover.
#[inline]
pub(crate) fn block(bytes: &[u8]) -> (Masks, usize) {
    match bytes.first_chunk::<BLOCK>() {
        Some(full) => (masks(full), BLOCK),
        None => (masks(&padded(bytes, 0)), bytes.len()),
    }
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
        out.lf |= u64::from(bits(v.cmp_eq(lf))) << shift;
        out.colon |= u64::from(bits(v.cmp_eq(colon))) << shift;
        out.backslash |= u64::from(bits(v.cmp_eq(backslash))) << shift;
        out.cr |= u64::from(bits(v.cmp_eq(cr))) << shift;
    }
    out
}

/// One 16-byte vector from a 16-byte slice (compiles to a single unaligned load).
#[inline]
fn load(chunk: &[u8]) -> i8x16 {
    let bytes: [u8; 16] = chunk.try_into().expect("16-byte chunk");
    i8x16::from(bytes.map(|b| b as i8))
}

/// One bit per byte lane of a comparison result (bit `i` for lane `i`).
#[inline(always)]
fn bits(eq: i8x16) -> u16 {
    eq.move_mask() as u16
}

/// The index of the first backslash in `bytes`. Works 16 bytes at a time, the last 16
/// overlapping those before; shorter inputs are read byte by byte. Header names and values
/// are short: for them `memchr`'s set-up cost more than the search.
#[inline]
pub(crate) fn find_backslash(bytes: &[u8]) -> Option<usize> {
    let backslash = i8x16::splat(b'\\' as i8);
    let hits = |chunk: &[u8]| bits(load(chunk).cmp_eq(backslash));
    let len = bytes.len();
    if len < 16 {
        return bytes.iter().position(|&b| b == b'\\');
    }
    let mut at = 0;
    while at + 16 <= len {
        let found = hits(&bytes[at..at + 16]);
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize);
        }
        at += 16;
    }
    // The last bytes, as the 16 that end the input: the ones already read have no backslash.
    let found = hits(&bytes[len - 16..]);
    (found != 0).then(|| len - 16 + found.trailing_zeros() as usize)
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
    fn line_end_bits_mark_control_bytes_up_to_cr_and_backslashes() {
        let text: Vec<u8> = b"a:b\\c\rd\ne:::\\\r\n\t\0\x0e\x1f ~\xff\x8d\x0d"
            .iter()
            .copied()
            .cycle()
            .take(200)
            .collect();
        for start in 0..text.len() {
            let rest = &text[start..];
            let expected = rest
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, b)| **b <= b'\r' || **b == b'\\')
                .fold(0u64, |m, (i, _)| m | 1 << i);
            let bits = match rest.first_chunk::<BLOCK>() {
                Some(full) => line_end_bits(full),
                None => line_end_bits(&padded(rest, b' ')),
            };
            assert_eq!(bits, expected);
            if let Some(chunk) = rest.first_chunk::<16>() {
                let (m, _) = block(rest);
                assert_eq!(u64::from(line_feeds16(chunk)), m.lf & 0xFFFF);
                assert_eq!(u64::from(colons16(chunk)), m.colon & 0xFFFF);
            }
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
    fn find_backslash_finds_the_first_one_at_any_length_and_place() {
        for len in 0..70 {
            assert_eq!(find_backslash(&vec![b'a'; len]), None, "none in {len}");
            for at in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b'\\';
                // A second one after the first must not be found instead.
                if at + 1 < len {
                    bytes[len - 1] = b'\\';
                }
                assert_eq!(find_backslash(&bytes), Some(at), "at {at} of {len}");
            }
        }
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
