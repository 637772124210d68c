//! A clock the unit tests move.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use teleapi_domain::Timestamp;
use teleapi_ports::Clock;

pub(crate) struct SteppedClock(Mutex<Timestamp>);

impl SteppedClock {
    pub(crate) fn starting_now() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Timestamp::now())))
    }

    pub(crate) fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now = now.plus(by);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}
