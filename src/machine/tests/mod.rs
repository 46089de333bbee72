//! The persister driven by hand: each test reads as the story it checks.

mod recovery;
mod writing;
