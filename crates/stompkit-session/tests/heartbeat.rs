//! Heart-beats: negotiation, sending only when idle, loss detection with the grace factor.

mod support;

use stompkit_codec::Version;
use stompkit_session::{Directive, Event, FailureKind, HeartBeat, Message, SessionConfig, State};
use support::*;

fn hb_config(send: u64, receive: u64) -> SessionConfig {
    Sim::config()
        .with_heart_beat(ms(send), ms(receive))
        .with_heartbeat_grace(2.0)
}

fn negotiated(sim: &Sim) -> HeartBeat {
    sim.events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Connected { heart_beat, .. } => Some(*heart_beat),
            _ => None,
        })
        .expect("connected")
}

#[test]
fn rabbitmq_answer_1000_to_our_500_is_negotiated_per_spec() {
    let steps = transcript("rabbitmq-heart-beats");
    let now = std::time::Instant::now();
    let mut session =
        stompkit_session::Session::new(hb_config(500, 500).with_versions([Version::V1_2]), now)
            .unwrap();
    session.connect(now);
    session.transport_connected(
        now,
        session.attempt().unwrap(),
        stompkit_session::Credentials::login("guest", "guest"),
    );
    assert_eq!(&session.poll_transmit().unwrap()[..], &steps[0].data[..]);
    session.handle_input(
        now,
        session.attempt().unwrap(),
        &server_bytes(&steps, &[])[0],
    );
    let hb = std::iter::from_fn(|| session.poll_event())
        .find_map(|e| match e {
            Event::Connected { heart_beat, .. } => Some(heart_beat),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        hb,
        HeartBeat {
            send: Some(ms(1000)),
            expect: Some(ms(1000))
        }
    );
    // We send an EOL after 1000 ms of silence, not after 500.
    assert_eq!(session.poll_timeout(), Some(now + ms(1000)));
    session.handle_timeout(now + ms(1000));
    assert_eq!(&session.poll_transmit().unwrap()[..], b"\n");
}

#[test]
fn zero_on_either_side_disables_heart_beats() {
    let mut sim = Sim::connected(hb_config(0, 0), BrokerConfig::default());
    assert_eq!(
        negotiated(&sim),
        HeartBeat {
            send: None,
            expect: None
        }
    );
    // Only the health check is due; once it passes, nothing is scheduled.
    assert!(!sim.session.is_healthy());
    sim.advance(secs(5));
    assert!(sim.session.is_healthy());
    assert_eq!(sim.session.poll_timeout(), None);
    let sim = Sim::connected(
        hb_config(1000, 1000),
        // A broker that does no heart-beats at all.
        BrokerConfig::default().with_heart_beat_versions(&[]),
    );
    assert_eq!(
        negotiated(&sim),
        HeartBeat {
            send: None,
            expect: None
        }
    );
}

#[test]
fn no_heart_beats_on_1_0() {
    let config = hb_config(1000, 1000).with_versions([Version::V1_0]);
    let mut sim = Sim::connected(config, BrokerConfig::default());
    assert_eq!(negotiated(&sim), HeartBeat::default());
    sim.advance(secs(60));
    assert_eq!(sim.session.state(), State::Connected);
    assert_eq!(sim.broker.stats().heartbeats_received, 0);
}

#[test]
fn eol_is_sent_only_when_nothing_else_went_out_in_the_interval() {
    let mut sim = Sim::connected(hb_config(1000, 0), BrokerConfig::default());
    assert_eq!(negotiated(&sim).send, Some(ms(1000)));
    // Sending a frame every 600 ms keeps heart-beats away.
    for i in 0..10 {
        sim.advance(ms(600));
        sim.session
            .send(sim.now, Message::new("/queue/a", format!("m{i}")))
            .unwrap();
        sim.pump();
    }
    assert_eq!(sim.broker.stats().heartbeats_received, 0);
    assert_eq!(sim.session.stats().heartbeats_out, 0);
    // Silence: one EOL per interval.
    sim.advance(ms(3500));
    assert_eq!(sim.broker.stats().heartbeats_received, 3);
}

#[test]
fn heart_beat_loss_is_detected_within_interval_times_grace() {
    let config = hb_config(0, 1000).with_heartbeat_grace(2.0);
    let mut sim = Sim::connected(config, BrokerConfig::default());
    assert_eq!(negotiated(&sim).expect, Some(ms(1000)));
    // The broker's heart-beats keep the connection alive.
    sim.advance(secs(30));
    assert_eq!(sim.session.state(), State::Connected);
    assert!(sim.session.stats().heartbeats_in >= 29);
    // The broker goes silent (but the transport stays up, as with a dead NAT mapping).
    sim.broker.mute_heartbeats(None, true).unwrap();
    let silent_since = sim.now;
    sim.advance(ms(1999));
    assert_eq!(
        sim.session.state(),
        State::Connected,
        "still within 2 x 1000 ms"
    );
    sim.advance(ms(1001));
    let failed_at = sim.events.iter().find_map(|e| match e {
        Event::AttemptFailed { failure, .. } if failure.kind == FailureKind::HeartbeatLost => {
            Some(())
        }
        _ => None,
    });
    assert!(failed_at.is_some(), "heart-beat loss detected");
    let record = sim
        .session
        .attempts()
        .find(|r| {
            r.failure
                .as_ref()
                .is_some_and(|f| f.kind == FailureKind::HeartbeatLost)
        })
        .unwrap();
    let ended = record.ended_at.unwrap();
    assert!(
        ended - silent_since <= ms(2000),
        "detected {:?} after silence began",
        ended - silent_since
    );
    assert!(
        sim.directives
            .iter()
            .any(|d| matches!(d, Directive::Close(_)))
    );
}

#[test]
fn any_byte_counts_as_life_not_only_eols() {
    let config = hb_config(0, 1000).with_heartbeat_grace(1.5);
    let mut sim = Sim::connected(
        config,
        // Only messages come from the broker, no heart-beats.
        BrokerConfig::default().with_sending_heartbeats(false),
    );
    sim.session
        .subscribe(sim.now, stompkit_session::Subscribe::new("/queue/a"))
        .unwrap();
    sim.pump();
    for i in 0..20 {
        sim.advance(ms(1400));
        sim.publish("/queue/a", &format!("m{i}"));
        sim.pump();
    }
    assert_eq!(sim.session.state(), State::Connected);
    sim.advance(ms(1500));
    assert!(matches!(sim.session.state(), State::Reconnecting { .. }));
}
