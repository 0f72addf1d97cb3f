use std::time::{Duration, Instant};

use super::*;

const S: Duration = Duration::from_secs(1);

#[test]
fn off_never_acts() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(None, t0);
    assert_eq!(hb.poll(t0 + S * 1000, true), HeartbeatAction::Idle);
    assert_eq!(hb.next_wake(true), None);
    // A zero interval is off too, not a busy loop.
    let mut hb = Heartbeat::new(Some(Duration::ZERO), t0);
    assert_eq!(hb.poll(t0 + S, true), HeartbeatAction::Idle);
}

#[test]
fn pings_once_per_idle_interval_with_rising_nonces() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(Some(S), t0);
    assert_eq!(
        hb.poll(t0 + S - Duration::from_millis(1), true),
        HeartbeatAction::Idle
    );
    assert_eq!(
        hb.poll(t0 + S, true),
        HeartbeatAction::SendPing { nonce: 1 }
    );
    // The ping counts as a write: nothing more until a further interval.
    assert_eq!(hb.poll(t0 + S, true), HeartbeatAction::Idle);
    assert_eq!(hb.next_wake(true), Some(t0 + S * 2));
    hb.on_read(t0 + S * 2);
    assert_eq!(
        hb.poll(t0 + S * 2, true),
        HeartbeatAction::SendPing { nonce: 2 }
    );
}

#[test]
fn writes_postpone_the_ping() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(Some(S), t0);
    hb.on_write(t0 + S / 2);
    assert_eq!(hb.poll(t0 + S, true), HeartbeatAction::Idle);
    assert_eq!(hb.ping_at(), Some(t0 + S + S / 2));
}

#[test]
fn no_ping_while_the_write_buffer_is_busy() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(Some(S), t0);
    hb.on_read(t0 + S * 2);
    assert_eq!(hb.poll(t0 + S * 2, false), HeartbeatAction::Idle);
    assert_eq!(hb.next_wake(false), Some(t0 + S * 5));
}

#[test]
fn peer_dead_after_three_silent_intervals_reads_reset_it() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(Some(S), t0);
    hb.on_write(t0 + S * 3);
    assert_eq!(
        hb.poll(t0 + S * 3 - Duration::from_millis(1), false),
        HeartbeatAction::Idle
    );
    hb.on_read(t0 + S * 2);
    assert_eq!(hb.poll(t0 + S * 3, false), HeartbeatAction::Idle);
    assert_eq!(hb.dead_at(), Some(t0 + S * 5));
    // Dead wins over a due ping.
    assert_eq!(hb.poll(t0 + S * 5, true), HeartbeatAction::PeerDead);
}
