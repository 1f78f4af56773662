//! Header value escaping (spec 1.2 "Value Encoding"; 1.1 has the same minus `\r`).

use bytes::{BufMut, BytesMut};

use crate::scan::find_backslash;

/// Why an escaped header could not be decoded; `at` is the backslash's index in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnescapeError {
    Undefined { at: usize, escape: u8 },
    Trailing { at: usize },
}

/// Appends `src` with its escape sequences decoded to `out`.
pub(crate) fn unescape_into(
    src: &[u8],
    with_cr: bool,
    out: &mut Vec<u8>,
) -> Result<(), UnescapeError> {
    let mut rest = src;
    let mut base = 0;
    while let Some(i) = find_backslash(rest) {
        out.extend_from_slice(&rest[..i]);
        let Some(&escape) = rest.get(i + 1) else {
            return Err(UnescapeError::Trailing { at: base + i });
        };
        out.push(match escape {
            b'n' => b'\n',
            b'c' => b':',
            b'\\' => b'\\',
            b'r' if with_cr => b'\r',
            _ => {
                return Err(UnescapeError::Undefined {
                    at: base + i,
                    escape,
                });
            }
        });
        rest = &rest[i + 2..];
        base += i + 2;
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// Appends `src` escaped for 1.1 (`with_cr == false`) or 1.2.
///
/// In 1.1 a carriage return has no escape and is written as it is: a 1.1 line ends at LF only.
pub(crate) fn escape_into(src: &[u8], with_cr: bool, dst: &mut BytesMut) {
    let mut start = 0;
    for (i, &b) in src.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'\\' => b"\\\\",
            b':' => b"\\c",
            b'\n' => b"\\n",
            b'\r' if with_cr => b"\\r",
            _ => continue,
        };
        dst.put_slice(&src[start..i]);
        dst.put_slice(replacement);
        start = i + 1;
    }
    dst.put_slice(&src[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescape(src: &[u8], with_cr: bool) -> Result<Vec<u8>, UnescapeError> {
        let mut out = Vec::new();
        unescape_into(src, with_cr, &mut out).map(|()| out)
    }

    #[test]
    fn spec_escapes_decode_in_1_2() {
        assert_eq!(unescape(br"a\cb\nc\rd\\e", true).unwrap(), b"a:b\nc\rd\\e");
    }

    #[test]
    fn backslash_r_is_undefined_in_1_1() {
        assert_eq!(
            unescape(br"x\r", false),
            Err(UnescapeError::Undefined {
                at: 1,
                escape: b'r'
            })
        );
    }

    #[test]
    fn undefined_escape_is_an_error_at_its_backslash() {
        assert_eq!(
            unescape(br"ab\cd\t", true),
            Err(UnescapeError::Undefined {
                at: 5,
                escape: b't'
            })
        );
    }

    #[test]
    fn trailing_backslash_is_an_error() {
        assert_eq!(
            unescape(br"ab\\\", true),
            Err(UnescapeError::Trailing { at: 4 })
        );
    }

    #[test]
    fn escape_round_trips() {
        let raw = b"C:\\jobs\r\nnew";
        let mut dst = BytesMut::new();
        escape_into(raw, true, &mut dst);
        assert_eq!(&dst[..], br"C\c\\jobs\r\nnew");
        assert_eq!(unescape(&dst, true).unwrap(), raw);
    }
}
