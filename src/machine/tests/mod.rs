//! The persister driven by hand: each test reads as the story it checks.

mod recovery;
mod writing;

#[test]
fn retry_counts_name_each_fault_as_the_fault_does() {
    use crate::protocol::Fault;
    let faults = [
        Fault::Conflict,
        Fault::Throttled,
        Fault::BodyDamaged,
        Fault::ServerError { status: 500 },
        Fault::TimedOut,
        Fault::ConnectionFailed,
    ];
    for fault in faults {
        let mut counts = super::RetryCounts::default();
        counts.count(&fault);
        let counted: Vec<_> = counts.by_cause().into_iter().filter(|(_, n)| *n == 1).map(|(c, _)| c).collect();
        assert_eq!(counted, [fault.cause()], "{fault:?}");
        assert_eq!(counts.total(), 1);
    }
}
