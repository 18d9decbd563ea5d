//! The event bus: every event the supervisor records (SPEC §7) goes to `events.jsonl` and to each
//! subscriber here — notifiers, StatsD, the HTTP API's `/api/events` streams.
//!
//! Publishing never blocks: each subscriber has a bounded queue, and an event that does not fit
//! is dropped for that subscriber alone (counted, and logged once). A slow or failing consumer
//! therefore never delays supervision. A subscriber that went away is forgotten on the next
//! publish.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use crate::events::journal::EventRecord;

/// Events a subscriber may have queued before new ones are dropped for it.
pub const QUEUE: usize = 1024;

#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

/// Names a subscription for [`EventBus::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionId(u64);

struct Subscriber {
    id: SubscriptionId,
    name: String,
    tx: SyncSender<Arc<EventRecord>>,
    dropped: u64,
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus::default()
    }

    /// A new subscriber's queue (`name` is shown when its events are dropped). Dropping the
    /// receiver unsubscribes; so does [`Self::unsubscribe`], which ends the receiver's iteration.
    pub fn subscribe(&self, name: &str) -> (SubscriptionId, Receiver<Arc<EventRecord>>) {
        let id = SubscriptionId(
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let (tx, rx) = sync_channel(QUEUE);
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(Subscriber {
                id,
                name: name.into(),
                tx,
                dropped: 0,
            });
        }
        (id, rx)
    }

    /// Drops the subscription's sender: its receiver sees the end once it has read what is queued.
    pub fn unsubscribe(&self, id: SubscriptionId) {
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.retain(|s| s.id != id);
        }
    }

    /// Hands `events` to every subscriber, in order, without waiting for any of them.
    pub fn publish(&self, events: &[EventRecord]) {
        if events.is_empty() {
            return;
        }
        let Ok(mut subs) = self.subscribers.lock() else {
            return;
        };
        if subs.is_empty() {
            return;
        }
        let shared: Vec<Arc<EventRecord>> = events.iter().cloned().map(Arc::new).collect();
        subs.retain_mut(|s| {
            for e in &shared {
                match s.tx.try_send(e.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        if s.dropped == 0 {
                            log::warn!(
                                "{} is not keeping up with events; dropping events for it",
                                s.name
                            );
                        }
                        s.dropped += 1;
                    }
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
            true
        });
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str) -> EventRecord {
        EventRecord::new(name, Some("api"), Some(0), Some(1), "d")
    }

    #[test]
    fn every_subscriber_gets_every_event_in_order() {
        let bus = EventBus::new();
        let (_, a) = bus.subscribe("a");
        let (_, b) = bus.subscribe("b");
        bus.publish(&[ev("started"), ev("ready")]);
        for rx in [&a, &b] {
            let got: Vec<String> = rx.try_iter().map(|e| e.event.clone()).collect();
            assert_eq!(got, ["started", "ready"]);
        }
    }

    #[test]
    fn a_full_subscriber_loses_events_without_blocking_and_a_gone_one_is_forgotten() {
        let bus = EventBus::new();
        let (_, slow) = bus.subscribe("slow");
        let (_, gone) = bus.subscribe("gone");
        drop(gone);
        let many: Vec<EventRecord> = (0..QUEUE + 10).map(|_| ev("exited")).collect();
        bus.publish(&many); // returns although `slow` reads nothing
        assert_eq!(slow.try_iter().count(), QUEUE);
        assert_eq!(bus.subscribers(), 1);
        drop(slow);
        bus.publish(&[ev("ready")]);
        assert_eq!(bus.subscribers(), 0);
    }

    #[test]
    fn unsubscribing_ends_the_receiver_after_what_is_queued() {
        let bus = EventBus::new();
        let (id, rx) = bus.subscribe("x");
        bus.publish(&[ev("started")]);
        bus.unsubscribe(id);
        assert_eq!(rx.iter().count(), 1); // would block forever if the sender were kept
    }
}
