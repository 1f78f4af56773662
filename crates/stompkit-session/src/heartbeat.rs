//! Heart-beat negotiation (spec 1.2 "Heart-beating").

use std::time::Duration;

use crate::HeartBeat;

/// Parses a `heart-beat` header value `sx,sy` (milliseconds), by the codec's grammar.
pub(crate) fn parse(value: &[u8]) -> Option<(u64, u64)> {
    stompkit_codec::value::heart_beat(value).ok()
}

/// Our wish `(cx, cy)` against the broker's `(sx, sy)`: we send every `max(cx, sy)` unless
/// either is 0; we expect something every `max(cy, sx)` unless either is 0.
pub(crate) fn negotiate(ours: (Duration, Duration), theirs: (u64, u64)) -> HeartBeat {
    let cx = u64::try_from(ours.0.as_millis()).unwrap_or(u64::MAX);
    let cy = u64::try_from(ours.1.as_millis()).unwrap_or(u64::MAX);
    let (sx, sy) = theirs;
    let interval = |a: u64, b: u64| (a != 0 && b != 0).then(|| Duration::from_millis(a.max(b)));
    HeartBeat {
        send: interval(cx, sy),
        expect: interval(cy, sx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rabbitmq_raises_500_to_its_1000_minimum() {
        let hb = negotiate((ms(500), ms(500)), (1000, 1000));
        assert_eq!(hb.send, Some(ms(1000)));
        assert_eq!(hb.expect, Some(ms(1000)));
    }

    #[test]
    fn zero_on_either_side_disables_that_direction() {
        let hb = negotiate((ms(0), ms(500)), (700, 400));
        assert_eq!(hb.send, None);
        assert_eq!(hb.expect, Some(ms(700)));
        let hb = negotiate((ms(300), ms(500)), (0, 400));
        assert_eq!(hb.send, Some(ms(400)));
        assert_eq!(hb.expect, None);
    }

    #[test]
    fn parses_the_header() {
        assert_eq!(parse(b"1000,0"), Some((1000, 0)));
        assert_eq!(parse(b"1000"), None);
        assert_eq!(parse(b"a,b"), None);
        assert_eq!(parse(b" 1000 , 500"), Some((1000, 500)));
    }
}
