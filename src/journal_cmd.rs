//! `algo-engine journal inspect|tail`.

use anyhow::{Context, Result};
use coldpath::inspect::{format_unix_ns, inspect as inspect_dir, render};
use ringbuffers::journal::Tailer;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Prints the journal's segments, record counts and CRC check; exit 1 when corrupt.
pub fn inspect(dir: &Path, json: bool) -> Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let ins = inspect_dir(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&ins)?);
    } else {
        println!("journal {}", ins.dir);
        println!(
            "schema: this build {} ({})",
            ins.build_schema_hash,
            if ins.schema_matches {
                "matches every segment"
            } else {
                "DIFFERS from a segment"
            }
        );
        println!("segments: {}", ins.segments.len());
        for s in &ins.segments {
            println!(
                "  {}  index {}  first seq {}  size {} B  version {}  schema {}",
                s.file, s.index, s.first_seq, s.segment_size, s.version, s.schema_hash
            );
        }
        println!("records: {} ({} bytes)", ins.records, ins.bytes);
        if let Some((a, b)) = ins.seq_range {
            println!("sequence: {a} .. {b}");
        }
        if let Some((a, b)) = ins.time_range {
            println!("time: {} .. {}", format_unix_ns(a), format_unix_ns(b));
        }
        println!("by type:");
        for (k, n) in &ins.counts {
            println!("  {k:<16} {n}");
        }
        if ins.corruptions.is_empty() {
            println!("crc: ok");
        } else {
            for c in &ins.corruptions {
                println!(
                    "crc: CORRUPT segment {} offset {}: {}",
                    c.segment, c.offset, c.reason
                );
            }
        }
    }
    Ok(if ins.corruptions.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints records from `from`, optionally following the live journal until Ctrl-C.
pub fn tail(dir: &Path, from: u64, limit: Option<u64>, follow: bool) -> Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::install(&stop)?;
    let mut tailer = Tailer::open_at(dir, None, from)
        .with_context(|| format!("opening {} at sequence {from}", dir.display()))?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut printed = 0u64;
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| printed < l) {
        match tailer
            .next()
            .with_context(|| format!("reading {}", dir.display()))?
        {
            Some(rec) => {
                if writeln!(out, "{}", render(&rec)).is_err() {
                    break; // stdout closed (e.g. piped into `head`): not an error
                }
                printed += 1;
            }
            None if follow => {
                let _ = out.flush();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            None => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}
