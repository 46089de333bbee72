//! The `s3wal` command line. The driver and its commands arrive with the
//! driver issue; until then this only says so.

fn main() {
    let command = std::env::args().nth(1).unwrap_or_default();
    match command.as_str() {
        "demo" => println!("s3wal demo: not built yet (the driver and local-directory store are the next issue)"),
        _ => println!("usage: s3wal demo"),
    }
}
