//! The s3wal simulator: a seeded, virtual-time world that drives the sans-IO
//! state machine against a model of S3. Built out in its own issue.
