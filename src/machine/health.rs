//! Whether the store answers. An idle writer probes it now and then, so a
//! dead endpoint is found before a batch is sent to it; after a connection
//! failure or timeout the writer sends no new batch until a probe succeeds.

use std::time::Duration;

use crate::types::{RequestId, Time};

#[derive(Debug)]
pub(crate) struct Health {
    interval: Duration,
    /// When the store last answered anything.
    last_heard: Time,
    probe: Option<RequestId>,
    unhealthy: Option<Unhealthy>,
}

#[derive(Copy, Clone, Debug)]
struct Unhealthy {
    failed_probes: u32,
    probe_at: Time,
}

impl Health {
    pub fn new(interval: Duration) -> Health {
        Health { interval, last_heard: Time::ZERO, probe: None, unhealthy: None }
    }

    /// Whether a probe is outstanding.
    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    pub fn is_healthy(&self) -> bool {
        self.unhealthy.is_none()
    }

    /// The store answered at `now`.
    pub fn heard(&mut self, now: Time) {
        self.last_heard = self.last_heard.max(now);
    }

    /// A request got no answer: pause new batches and probe at once.
    pub fn lost_contact(&mut self, now: Time) {
        if self.unhealthy.is_none() {
            self.unhealthy = Some(Unhealthy { failed_probes: 0, probe_at: now });
        }
    }

    /// When the next probe is due: soon while unhealthy, after an idle
    /// interval while `idle`, never while one is outstanding.
    pub fn probe_due(&self, idle: bool) -> Option<Time> {
        if self.probe.is_some() {
            return None;
        }
        match self.unhealthy {
            Some(u) => Some(u.probe_at),
            None if idle => Some(self.last_heard + self.interval),
            None => None,
        }
    }

    pub fn probe_sent(&mut self, request: RequestId) {
        self.probe = Some(request);
    }

    /// Whether `request` is the outstanding probe (and it is now finished).
    pub fn take_probe(&mut self, request: RequestId) -> bool {
        let ours = self.probe == Some(request);
        if ours {
            self.probe = None;
        }
        ours
    }

    pub fn probe_succeeded(&mut self, now: Time) {
        self.unhealthy = None;
        self.heard(now);
    }

    /// Returns how many probes in a row have failed.
    pub fn probe_failed(&mut self, now: Time, delay: impl FnOnce(u32) -> Duration) -> u32 {
        let failed = self.unhealthy.map_or(0, |u| u.failed_probes) + 1;
        self.unhealthy = Some(Unhealthy { failed_probes: failed, probe_at: now + delay(failed) });
        failed
    }
}
