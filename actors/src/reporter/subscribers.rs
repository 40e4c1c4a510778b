//! The subscribers sink: the embedding program's callbacks, called with every event as it
//! happens, in order, with its time.

use herd_core::events::Stamped;
use herd_core::ledger::Ledger;

use super::Sink;

/// A callback that receives every event of a session, in order, with its time.
pub type EventSubscriber = Box<dyn FnMut(&Stamped) + Send>;

/// Calls every subscriber with every event.
pub struct Subscribers {
    subscribers: Vec<EventSubscriber>,
}

impl Subscribers {
    /// The sink calling `subscribers`, in order.
    pub fn new(subscribers: Vec<EventSubscriber>) -> Subscribers {
        Subscribers { subscribers }
    }
}

impl Sink for Subscribers {
    fn event(&mut self, stamped: &Stamped, _: &Ledger) {
        for subscriber in &mut self.subscribers {
            subscriber(stamped);
        }
    }
}
