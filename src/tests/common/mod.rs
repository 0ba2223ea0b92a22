//! What the CLI test binaries share: running the real `algo-engine` binary and reading what it
//! journaled.

#![allow(dead_code)] // each test binary uses its own subset

use hotpath::codec::{self, RecordKind};
use hotpath::risk::TradeClose;
use ringbuffers::journal::Tailer;
use std::path::Path;
use std::process::{Command, Output};

/// `algo-engine args`, to be run from the crate root.
pub fn engine_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_algo-engine"));
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs `algo-engine args` from the crate root and waits for it.
pub fn engine(args: &[&str]) -> Output {
    engine_command(args).output().expect("run algo-engine")
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every `TradeClose` of the run's strategy journal (`<journal>/strategy`), decoded directly
/// from the records.
pub fn journal_closes(journal: &Path) -> Vec<TradeClose> {
    let mut t = Tailer::open(&journal.join("strategy"), Some(codec::SCHEMA_HASH)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = t.next().unwrap() {
        if r.kind == RecordKind::TradeClose.as_u16() {
            out.push(codec::decode::<TradeClose>(r.payload).unwrap());
        }
    }
    out
}
