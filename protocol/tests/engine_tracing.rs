//! Misbehaviour is traced with its peer and the message that caused it. Alone in its test
//! binary: tracing caches per call site whether anyone listens, and a test on another thread
//! registering that site while no subscriber wanted it hid the event now and then.

mod common;

use common::*;
use threads_protocol::engine::{Event, Misbehaviour, NewThread, Time};
use threads_protocol::identity::PrivateKey;

/// Formatted tracing output, captured.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[test]
fn misbehaviour_is_traced_with_its_peer_and_message() {
    let (mut net, _) = net(1, 11);
    net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    net.collect();
    let attacker = PrivateKey::from_seed([9; 32]).public().peer_id();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        net.hosts[0].handle_message(Time(1), &attacker, b"\xff\xff\xff");
    });
    net.collect();
    let reported: Vec<&Misbehaviour> = net.events[0]
        .iter()
        .filter_map(|e| match e {
            Event::PeerMisbehaved { reason, .. } => Some(&**reason),
            _ => None,
        })
        .collect();
    assert!(
        matches!(reported.as_slice(), [Misbehaviour::InvalidMessage(_)]),
        "{reported:?}"
    );
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("peer misbehaved"))
        .unwrap_or_else(|| panic!("no misbehaviour event in:\n{text}"));
    assert!(line.contains(&attacker.to_string()), "{line}");
    // The event sits inside the span of the message that caused it, with the message length.
    assert!(
        line.contains("handle_message") && line.contains("len=3"),
        "{line}"
    );
}
