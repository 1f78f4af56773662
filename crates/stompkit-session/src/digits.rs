//! Header values made of a prefix and a number (`rcpt-42`, `<client>-7`), written without a
//! heap allocation: one is built for every receipted `SEND`.

/// Longest prefix kept on the stack (a `u64` has at most 20 digits).
const INLINE: usize = 44;

/// `prefix` followed by `n` in decimal.
pub(crate) enum Numbered {
    Inline { buf: [u8; INLINE + 20], len: u8 },
    Heap(String),
}

impl Numbered {
    pub(crate) fn new(prefix: &str, n: u64) -> Self {
        if prefix.len() > INLINE {
            return Self::Heap(format!("{prefix}{n}"));
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            // `rest % 10` is below 10: the cast keeps it whole.
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let mut buf = [0u8; INLINE + 20];
        let digits = &digits[at..];
        buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        buf[prefix.len()..prefix.len() + digits.len()].copy_from_slice(digits);
        let len = prefix.len() + digits.len();
        Self::Inline {
            buf,
            // At most INLINE + 20 = 64.
            len: len as u8,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { buf, len } => &buf[..usize::from(*len)],
            Self::Heap(s) => s.as_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{INLINE, Numbered};

    #[test]
    fn edges_read_as_format_writes_them() {
        let long = "p".repeat(INLINE);
        let longer = "p".repeat(INLINE + 1);
        for prefix in [
            "",
            "rcpt-",
            "0123456789abcdef-",
            long.as_str(),
            longer.as_str(),
        ] {
            for n in [0, 1, 9, 10, 99, 100, 1_000_000, u64::MAX / 10, u64::MAX] {
                assert_eq!(
                    Numbered::new(prefix, n).as_bytes(),
                    format!("{prefix}{n}").as_bytes(),
                    "{prefix:?} {n}"
                );
            }
        }
        assert!(matches!(
            Numbered::new(&long, u64::MAX),
            Numbered::Inline { .. }
        ));
        assert!(matches!(Numbered::new(&longer, 0), Numbered::Heap(_)));
    }

    proptest! {
        #[test]
        fn any_prefix_and_number_read_as_format_writes_them(prefix in ".{0,60}", n: u64) {
            let (ours, expected) = (Numbered::new(&prefix, n), format!("{prefix}{n}"));
            prop_assert_eq!(ours.as_bytes(), expected.as_bytes());
        }
    }
}
