//! The store's PUT round trips as this writer sees them, for an adaptive
//! hedge delay: TCP's retransmission-timeout rule (RFC 6298), smoothed round
//! trip plus four times its mean deviation, so one setting fits a store in
//! the same region and one across an ocean.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::types::{RequestId, Time};

/// How many mean deviations above the smoothed round trip a PUT must be to
/// be hedged (RFC 6298's K).
const DEVIATIONS: u32 = 4;

#[derive(Debug, Default)]
pub(crate) struct RoundTrips {
    /// When each batch PUT still unanswered was sent.
    sent: BTreeMap<RequestId, Time>,
    /// The smoothed round trip and its mean deviation, once a PUT answered.
    estimate: Option<Estimate>,
}

#[derive(Copy, Clone, Debug)]
struct Estimate {
    smoothed: Duration,
    deviation: Duration,
}

impl RoundTrips {
    pub fn sent(&mut self, request: RequestId, now: Time) {
        self.sent.insert(request, now);
    }

    /// A PUT answered. Every answer of the store counts, whichever PUT of a
    /// hedged pair it is and whether or not it still settles anything: had
    /// only the PUTs that beat the hedge delay been counted, the estimate
    /// would learn only fast round trips and the delay would shrink until
    /// nearly every PUT was hedged. A failure is no round trip (a timeout
    /// says only that it took longer than the client waited).
    pub fn answered(&mut self, request: RequestId, now: Time, is_answer: bool) {
        let Some(sent) = self.sent.remove(&request) else { return };
        if is_answer {
            self.sample(now.since(sent));
        }
    }

    /// Forgets every PUT in flight (the machine failed or was reset).
    pub fn clear(&mut self) {
        self.sent.clear();
    }

    fn sample(&mut self, rtt: Duration) {
        self.estimate = Some(match self.estimate {
            None => Estimate { smoothed: rtt, deviation: rtt / 2 },
            Some(Estimate { smoothed, deviation }) => {
                let error = smoothed.abs_diff(rtt);
                Estimate { smoothed: (smoothed * 7 + rtt) / 8, deviation: (deviation * 3 + error) / 4 }
            }
        });
    }

    /// How long a PUT may be out before it is hedged: `floor` until a PUT
    /// has answered, then the smoothed round trip plus four deviations, never
    /// below `floor`.
    pub fn hedge_delay(&self, floor: Duration) -> Duration {
        self.estimate.map_or(floor, |e| (e.smoothed + e.deviation * DEVIATIONS).max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn answer(r: &mut RoundTrips, request: u64, sent_ms: u64, rtt_ms: u64) {
        r.sent(RequestId(request), Time::from_millis(sent_ms));
        r.answered(RequestId(request), Time::from_millis(sent_ms + rtt_ms), true);
    }

    #[test]
    fn the_floor_holds_until_a_put_answers_and_below_the_estimate() {
        let mut r = RoundTrips::default();
        assert_eq!(r.hedge_delay(ms(5)), ms(5));
        answer(&mut r, 1, 0, 20);
        // First sample: smoothed 20, deviation 10: 20 + 4 x 10.
        assert_eq!(r.hedge_delay(ms(5)), ms(60));
        assert_eq!(r.hedge_delay(ms(100)), ms(100));
    }

    #[test]
    fn steady_round_trips_bring_the_delay_down_to_them_and_a_slower_store_raises_it() {
        let mut r = RoundTrips::default();
        for i in 0..200 {
            answer(&mut r, i, i, 20);
        }
        let near = r.hedge_delay(ms(1));
        assert!(near >= ms(20) && near < ms(21), "{near:?}");
        for i in 200..400 {
            answer(&mut r, i, i, 80 + i % 10);
        }
        let far = r.hedge_delay(ms(1));
        assert!(far > ms(85) && far < ms(130), "{far:?}");
    }

    #[test]
    fn failures_and_unknown_requests_are_no_samples() {
        let mut r = RoundTrips::default();
        r.sent(RequestId(1), Time::from_millis(0));
        r.answered(RequestId(1), Time::from_millis(5_000), false);
        r.answered(RequestId(2), Time::from_millis(5_000), true);
        assert_eq!(r.hedge_delay(ms(7)), ms(7));
        answer(&mut r, 3, 0, 10);
        r.clear();
        r.answered(RequestId(4), Time::from_millis(1), true);
        assert_eq!(r.hedge_delay(ms(1)), ms(30));
    }
}
