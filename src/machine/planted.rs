//! Deliberate bugs, one per invariant, that the simulator must catch. They
//! can only be switched on with the `planted-bugs` cargo feature, which only
//! the simulator's own tests enable.

/// A bug to plant with `Persister::plant`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlantedBug {
    /// Acks a batch as soon as its own PUT succeeds, out of order.
    AckOnCompletion,
    /// Acks past a position whose PUT is still in flight when the next one is done.
    AckBeforeEarlierDurable,
    /// Bounds only outstanding requests, not claimed positions.
    WindowCountsOutstandingOnly,
    /// Starts writing at the gap without fencing.
    SkipFence,
    /// Takes a 412 as success without checking who owns the object.
    Trust412,
    /// Forgets the batch that is still collecting when shutdown is asked.
    DropOpenBatchOnShutdown,
    /// Stops counting a hedged PUT's slower twin once the other settled the
    /// position, although it is still out.
    ForgetOrphans,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 7] = [
        PlantedBug::AckOnCompletion,
        PlantedBug::AckBeforeEarlierDurable,
        PlantedBug::WindowCountsOutstandingOnly,
        PlantedBug::SkipFence,
        PlantedBug::Trust412,
        PlantedBug::DropOpenBatchOnShutdown,
        PlantedBug::ForgetOrphans,
    ];
}
