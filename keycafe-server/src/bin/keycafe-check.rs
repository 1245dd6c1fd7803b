//! `keycafe-check`: verify (and repair) a node's snapshot and append-only
//! files. The checks and the repair are `keycafe_server::persist::check`;
//! this prints what they find. `docs/persistence.md` ("Checking and
//! repairing files") describes the output.
//!
//! Exit status: 0 when every file is whole (after any repair), 1 when any
//! is not, 2 on a usage error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use keycafe_server::persist::check::{self, NotRepaired, Report};

/// Check Keycafe snapshot and append-only files, and optionally repair them.
#[derive(Parser)]
#[command(name = "keycafe-check", version)]
struct Flags {
    /// The files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Cut an append-only file with a torn tail at its last good block,
    /// keeping the original as FILE.bak.
    #[arg(long)]
    repair: bool,
    /// With --repair, also cut an append-only file at damage in its middle
    /// (this drops writes that were acknowledged).
    #[arg(long, requires = "repair")]
    truncate_corrupt: bool,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let mut out = std::io::stdout().lock();
    let mut all_ok = true;
    for path in &flags.files {
        let report = check::inspect(path);
        print_report(&mut out, &report);
        if report.problem.is_none() {
            continue;
        }
        let mut ok = false;
        if flags.repair {
            let name = path.display();
            match check::repair(&report, flags.truncate_corrupt) {
                Ok(repaired) => {
                    let _ = writeln!(
                        out,
                        "{name}: repaired: cut to {} bytes, dropping {} bytes ({}); the original is in {}",
                        repaired.cut_at,
                        repaired.dropped_bytes,
                        repaired.dropped(),
                        repaired.backup.display()
                    );
                    let again = check::inspect(path);
                    print_report(&mut out, &again);
                    ok = again.problem.is_none();
                }
                Err(NotRepaired::Healthy) => ok = true,
                Err(why) => {
                    let _ = writeln!(out, "{name}: not repaired: {why}");
                }
            }
        }
        all_ok &= ok;
    }
    match all_ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// Two lines: the header, then the counts and the verdict.
fn print_report(out: &mut impl Write, report: &Report) {
    let name = report.path.display();
    if let Some(header) = &report.header {
        let _ = writeln!(out, "{name}: {}", check::describe_header(header));
    }
    let verdict = match &report.problem {
        None => "ok".to_string(),
        Some(problem) => problem.to_string(),
    };
    let good = if report.problem.is_some() {
        " good"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{name}: {}{good} blocks, {} records, {} bytes: {verdict}",
        report.blocks, report.records, report.bytes
    );
}
