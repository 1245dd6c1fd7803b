//! SLOWLOG and LATENCY: reading and clearing what [`crate::stats`] records
//! about slow commands.
//!
//! - `SLOWLOG GET [count]` (10 by default, -1 for all), `LEN`, `RESET`,
//!   `HELP`: the commands that took at least `slowlog-log-slower-than`
//!   microseconds, newest first, each as Redis gives it: id, Unix time,
//!   microseconds, arguments, client address, client name.
//! - `LATENCY LATEST`, `HISTORY event`, `RESET [event ...]`, `DOCTOR`,
//!   `HELP`: with `latency-monitor-threshold` set (in milliseconds; 0, the
//!   default, is off), every command that took at least that long is a
//!   sample of the `command` event (`fast-command` for commands flagged
//!   fast), one sample per second (the worst), 160 kept per event. Redis
//!   also records events such as `expire-cycle` and `fork`; Keycafe records
//!   only the command events, and has no `GRAPH` or `HISTOGRAM`.
//!
//! The subcommands and their numbers of arguments are checked by
//! [`super::execute`] against the table before these run.

use std::fmt::Write as _;

use keycafe_core::{Args, Reply};

use super::{ArgCursor, CmdError, CmdResult, Ctx, help};

/// `SLOWLOG GET [count] | LEN | RESET | HELP`.
pub fn slowlog(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let stats = &ctx.shared.command_stats;
    let mut cursor = ArgCursor::new(args);
    match cursor.next_keyword()?.as_bytes() {
        b"GET" => {
            let count = match cursor.remaining() {
                0 => 10,
                1 => slowlog_count(cursor.next_bytes()?)?,
                _ => {
                    let sub = String::from_utf8_lossy(args.get(1).unwrap_or_default());
                    return Err(CmdError::Other(format!(
                        "ERR unknown subcommand or wrong number of arguments for '{sub}'. \
                         Try SLOWLOG HELP."
                    )));
                }
            };
            let log = stats.slowlog();
            let entries = log.entries().take(count);
            reply.array(entries.len());
            for entry in entries {
                reply.array(6);
                reply.integer(entry.id as i64);
                reply.integer(entry.time as i64);
                reply.integer(entry.micros as i64);
                reply.array(entry.args.len());
                entry.args.iter().for_each(|arg| reply.bulk(arg));
                reply.bulk(entry.addr.as_bytes());
                reply.bulk(entry.name.as_bytes());
            }
        }
        b"LEN" => reply.integer(stats.slowlog().len() as i64),
        b"RESET" => {
            stats.slowlog().reset();
            reply.ok();
        }
        b"HELP" => help(reply, "SLOWLOG", SLOWLOG_HELP),
        _ => return Err(super::server::unknown_subcommand(args, "SLOWLOG")),
    }
    Ok(())
}

/// SLOWLOG GET's count: -1 for every entry.
fn slowlog_count(arg: &[u8]) -> CmdResult<usize> {
    let invalid = || CmdError::Other("ERR count should be greater than or equal to -1".into());
    match super::parse::parse_int(arg).map_err(|_| invalid())? {
        -1 => Ok(usize::MAX),
        n => usize::try_from(n).map_err(|_| invalid()),
    }
}

const SLOWLOG_HELP: &[&str] = &[
    "GET [<count>]",
    "    Return the newest <count> entries of the slow log (default: 10, -1 for all).",
    "    Each entry is: id, Unix time, duration in microseconds, arguments,",
    "    client address and port, client name.",
    "LEN",
    "    Return the number of entries in the slow log.",
    "RESET",
    "    Empty the slow log.",
    "HELP",
    "    Print this help.",
];

/// `LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR | HELP`.
pub fn latency(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let shared = ctx.shared;
    let mut cursor = ArgCursor::new(args);
    match cursor.next_keyword()?.as_bytes() {
        b"LATEST" => {
            let monitor = shared.command_stats.latency();
            let events: Vec<_> = monitor.events().collect();
            reply.array(events.len());
            for (name, series) in events {
                let latest = series.latest();
                reply.array(4);
                reply.bulk(name.as_bytes());
                reply.integer(latest.time as i64);
                reply.integer(latest.ms as i64);
                reply.integer(series.max as i64);
            }
        }
        b"HISTORY" => {
            let event = cursor.next_bytes()?;
            let monitor = shared.command_stats.latency();
            let samples: Vec<_> = monitor
                .event(event)
                .map(|series| series.history().collect())
                .unwrap_or_default();
            reply.array(samples.len());
            for sample in samples {
                reply.array(2);
                reply.integer(sample.time as i64);
                reply.integer(sample.ms as i64);
            }
        }
        b"RESET" => {
            let events = args.skip(2);
            let count = shared.command_stats.latency().reset(events.iter());
            reply.integer(count as i64);
        }
        b"DOCTOR" => {
            let threshold = shared.runtime.latency_threshold_ms();
            let text = doctor(&shared.command_stats.latency(), threshold);
            reply.verbatim(b"txt", text.as_bytes());
        }
        b"HELP" => help(reply, "LATENCY", LATENCY_HELP),
        _ => return Err(super::server::unknown_subcommand(args, "LATENCY")),
    }
    Ok(())
}

const LATENCY_HELP: &[&str] = &[
    "DOCTOR",
    "    Return a report, in words, on the latency events recorded.",
    "HISTORY <event>",
    "    Return the time and latency of the samples of the <event> class.",
    "LATEST",
    "    Return the latest and the worst sample of every event class.",
    "RESET [<event> ...]",
    "    Forget the samples of the named event classes (default: of all).",
    "HELP",
    "    Print this help.",
];

/// LATENCY DOCTOR's report: Keycafe's own words, with the figures Redis's
/// report gives for each event (spikes, average, mean deviation, period,
/// worst).
fn doctor(monitor: &crate::stats::LatencyMonitor, threshold: Option<u64>) -> String {
    let mut text = String::new();
    let Some(threshold) = threshold else {
        text.push_str(
            "The latency monitor is off. Turn it on with \
             CONFIG SET latency-monitor-threshold <milliseconds>: every command \
             that takes at least that long is then recorded as a latency event.\n",
        );
        return text;
    };
    let events: Vec<_> = monitor.events().collect();
    if events.is_empty() {
        let _ = writeln!(
            text,
            "No latency spike was recorded: no command took {threshold} ms or more \
             since the monitor was started or last reset."
        );
        return text;
    }
    let _ = writeln!(
        text,
        "Latency spikes were recorded (commands that took {threshold} ms or more):\n"
    );
    for (n, (name, series)) in events.iter().enumerate() {
        let samples: Vec<_> = series.history().collect();
        let count = samples.len() as u64;
        let average = samples.iter().map(|s| s.ms).sum::<u64>() / count.max(1);
        let deviation = samples.iter().map(|s| s.ms.abs_diff(average)).sum::<u64>() / count.max(1);
        let period = match (samples.first(), samples.last()) {
            (Some(first), Some(last)) if count > 1 => (last.time - first.time) / (count - 1),
            _ => 0,
        };
        let _ = writeln!(
            text,
            "{}. {name}: {count} latency spikes (average {average}ms, mean deviation \
             {deviation}ms, period {period} sec). Worst all time event {}ms.",
            n + 1,
            series.max
        );
    }
    text.push_str(
        "\nSLOWLOG GET shows the commands that were slow, if slowlog-log-slower-than is \
         at or below the latency threshold. KEYS, FLUSHALL and large MGET, MSET or DEL \
         requests take time in proportion to the keys they touch: SCAN walks the keys \
         a few at a time instead.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LatencyMonitor;

    #[test]
    fn slowlog_count_takes_minus_one_for_all() {
        assert_eq!(slowlog_count(b"-1").unwrap(), usize::MAX);
        assert_eq!(slowlog_count(b"0").unwrap(), 0);
        assert_eq!(slowlog_count(b"5").unwrap(), 5);
        for bad in [&b"-2"[..], b"x", b""] {
            assert_eq!(
                slowlog_count(bad).unwrap_err().to_string(),
                "ERR count should be greater than or equal to -1"
            );
        }
    }

    #[test]
    fn doctor_reports_each_event() {
        let mut monitor = LatencyMonitor::default();
        assert!(doctor(&monitor, None).contains("monitor is off"));
        assert!(doctor(&monitor, Some(5)).starts_with("No latency spike"));
        monitor.add("command", 100, 20);
        monitor.add("command", 102, 40);
        let text = doctor(&monitor, Some(5));
        assert!(
            text.contains(
                "1. command: 2 latency spikes (average 30ms, mean deviation 10ms, \
                 period 2 sec). Worst all time event 40ms."
            ),
            "{text}"
        );
    }
}
