//! What a node measures about the commands it runs: INFO's commandstats,
//! errorstats and `total_error_replies`, the slow log (SLOWLOG) and the
//! latency monitor's command events (LATENCY).
//!
//! # Cost on the per-command path
//!
//! A node runs GET and SET at hundreds of thousands per second per core,
//! about a microsecond each, so what is measured per command must cost a
//! few nanoseconds and write nothing shared. Per command, the connection's
//! own [`ConnStats`] (no atomics, no lock, no allocation) does:
//!
//! - one clock read: the CPU's time-stamp counter through `quanta` (one
//!   `rdtsc`, about 7 ns, no system call; `quanta` falls back to the OS's
//!   monotonic clock where the counter is not reliable). The read that ends
//!   a command also starts the next command of the same batch, so a batch
//!   of N commands reads the clock N + 1 times, not 2N. A command's time
//!   therefore includes parsing its request (tens of nanoseconds), which
//!   Redis's does not;
//! - one multiplication and shift to turn ticks into nanoseconds;
//! - its counts added to a row of a small array (8 rows searched in order;
//!   a pipeline of one command always hits the first);
//! - one byte compared to see whether its reply is an error;
//! - two relaxed loads of the slow log's and the latency monitor's
//!   thresholds (plain loads on x86 and ARM), compared with its time.
//!
//! That is about 10–15 ns, around 1% of a GET at a million commands per
//! second per core. At the end of each batch (one read from the socket, all
//! of its requests run) the connection adds its rows into the node's
//! [`CommandStats`]: a few atomic additions per batch, not per command.
//! Only what is rare takes a lock: the codes of error replies (counted
//! under a mutex, also once per batch), a command slower than
//! `slowlog-log-slower-than` (an entry with copied arguments), a latency
//! event.
//!
//! Commands on cluster-bus connections (gossip, migration batches,
//! replication) are node-to-node traffic, not clients' commands, and are not
//! counted.
//!
//! # What is counted, as in Redis
//!
//! - `calls` and `usec`: commands that ran, subcommands of a container with
//!   rows in the table counted apart (`cmdstat_config|get`); between MULTI
//!   and EXEC, at EXEC (the queuing is not a call).
//! - `rejected_calls`: refused before running (wrong number of arguments,
//!   NOAUTH, OOM, a redirect or another refusal of the slot check).
//! - `failed_calls`: ran and answered an error.
//! - errorstats: every error reply by its code (its first word, if a space
//!   ends it within 32 bytes, else `ERR`), at most 128 codes; one more and
//!   only `ERRORSTATS_DISABLED` is shown until `CONFIG RESETSTAT`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use keycafe_core::{Args, command};

use crate::runtime::Runtime;

/// The node's counters, slow log and latency events.
pub struct CommandStats {
    clock: quanta::Clock,
    /// One row per command and subcommand (see
    /// [`command::with_subcommands`]).
    counters: Box<[Counters]>,
    errors: Mutex<ErrorCounts>,
    error_replies: AtomicU64,
    slowlog: Mutex<SlowLog>,
    latency: Mutex<LatencyMonitor>,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    nanos: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

/// One command's counts, as INFO's commandstats shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandCounts {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
}

impl Default for CommandStats {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandStats {
    pub fn new() -> CommandStats {
        CommandStats {
            clock: quanta::Clock::new(),
            counters: (0..command::with_subcommands_len())
                .map(|_| Counters::default())
                .collect(),
            errors: Mutex::new(ErrorCounts::default()),
            error_replies: AtomicU64::new(0),
            slowlog: Mutex::new(SlowLog::default()),
            latency: Mutex::new(LatencyMonitor::default()),
        }
    }

    /// `CONFIG RESETSTAT`: commandstats, errorstats and
    /// `total_error_replies` start again from zero. (The slow log and the
    /// latency events are not statistics: SLOWLOG RESET and LATENCY RESET
    /// clear them.)
    pub fn reset(&self) {
        for counters in self.counters.iter() {
            for counter in [
                &counters.calls,
                &counters.nanos,
                &counters.rejected,
                &counters.failed,
            ] {
                counter.store(0, Ordering::Relaxed);
            }
        }
        *lock(&self.errors) = ErrorCounts::default();
        self.error_replies.store(0, Ordering::Relaxed);
    }

    /// The counts of every command and subcommand that was called, refused
    /// or failed, with its name, in the table's order.
    pub fn commands(&self) -> Vec<(&'static str, CommandCounts)> {
        self.counters
            .iter()
            .enumerate()
            .filter_map(|(index, counters)| {
                let counts = CommandCounts {
                    calls: counters.calls.load(Ordering::Relaxed),
                    usec: counters.nanos.load(Ordering::Relaxed) / 1000,
                    rejected: counters.rejected.load(Ordering::Relaxed),
                    failed: counters.failed.load(Ordering::Relaxed),
                };
                let name = command::with_subcommands(index)?.name;
                (counts != CommandCounts::default()).then_some((name, counts))
            })
            .collect()
    }

    /// Error replies by code, in byte order (as Redis lists them).
    pub fn errors(&self) -> Vec<(String, u64)> {
        let errors = lock(&self.errors);
        match errors.disabled {
            true => vec![(ERRORSTATS_DISABLED.to_string(), 1)],
            false => errors
                .counts
                .iter()
                .map(|(code, &count)| (String::from_utf8_lossy(code).into_owned(), count))
                .collect(),
        }
    }

    /// Every error reply since start (or `CONFIG RESETSTAT`).
    pub fn error_replies(&self) -> u64 {
        self.error_replies.load(Ordering::Relaxed)
    }

    /// The slow log, for SLOWLOG.
    pub fn slowlog(&self) -> std::sync::MutexGuard<'_, SlowLog> {
        lock(&self.slowlog)
    }

    /// The latency events, for LATENCY.
    pub fn latency(&self) -> std::sync::MutexGuard<'_, LatencyMonitor> {
        lock(&self.latency)
    }

    /// Adds a slow command to the slow log and the latency monitor, as
    /// [`ConnStats::finish`] found it to be.
    #[cold]
    pub fn note_slow(&self, runtime: &Runtime, slow: &Slow, entry: impl FnOnce() -> SlowEntry) {
        let now = unix_seconds();
        if let Some(threshold) = runtime.slowlog_slower_than_us()
            && slow.micros >= threshold
            && slow.slowlog
        {
            let mut entry = entry();
            entry.time = now;
            entry.micros = slow.micros;
            self.slowlog().push(entry, runtime.slowlog_max_len());
        }
        if let Some(threshold) = runtime.latency_threshold_ms() {
            let ms = slow.micros / 1000;
            if ms >= threshold {
                let event = match slow.fast {
                    true => "fast-command",
                    false => "command",
                };
                self.latency().add(event, now, ms);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay meaningful whatever panicked while holding them.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Redis's limit on distinct error codes in errorstats.
const MAX_ERROR_CODES: usize = 128;
/// What errorstats shows once more codes than that were seen.
const ERRORSTATS_DISABLED: &str = "ERRORSTATS_DISABLED";
/// An error's code is its first word if a space ends it within this many
/// bytes (else `ERR`), as in Redis.
const MAX_CODE_LEN: usize = 32;

#[derive(Debug, Default)]
struct ErrorCounts {
    counts: BTreeMap<Box<[u8]>, u64>,
    /// More than [`MAX_ERROR_CODES`] codes were seen.
    disabled: bool,
}

impl ErrorCounts {
    fn add(&mut self, code: &[u8], count: u64) {
        if self.disabled {
            return;
        }
        if let Some(total) = self.counts.get_mut(code) {
            *total += count;
        } else if self.counts.len() >= MAX_ERROR_CODES {
            tracing::warn!(
                "errorstats stopped counting by code: more than {MAX_ERROR_CODES} codes \
                 (CONFIG RESETSTAT starts again)"
            );
            self.counts.clear();
            self.disabled = true;
        } else {
            self.counts.insert(code.into(), count);
        }
    }
}

/// The code INFO's errorstats counts an error reply under.
pub fn error_code(text: &[u8]) -> &[u8] {
    let head = &text[..text.len().min(MAX_CODE_LEN)];
    match head.iter().position(|&b| b == b' ') {
        Some(end) if end > 0 => &text[..end],
        _ => b"ERR",
    }
}

/// What became of a request, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Not a command (or not a subcommand) of the table: only its error is
    /// counted.
    Unknown,
    /// Refused before running. The number is the command's row (see
    /// [`command::with_subcommands`]).
    Rejected(usize),
    /// Queued between MULTI and EXEC: counted when EXEC runs it, or as
    /// refused if queuing answered an error.
    Queued(usize),
    /// Ran; `fast` is its flag (the latency monitor's `fast-command`).
    Called { stat: usize, fast: bool },
}

/// A command that took long enough for the slow log or the latency monitor
/// to want to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slow {
    pub micros: u64,
    pub fast: bool,
    /// False for EXEC: its commands are logged one by one instead, as in
    /// Redis.
    pub slowlog: bool,
}

/// Pending rows per connection; a batch that uses more distinct commands
/// adds the rows to the node's counters as it goes.
const ROWS: usize = 8;
/// Pending error codes per connection.
const ERROR_ROWS: usize = 2;

/// A connection's counts since its last batch ended: see the module
/// documentation.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// The clock when the last command of this batch ended; 0 between
    /// batches.
    mark: u64,
    rows: [Row; ROWS],
    used: usize,
    errors: [ErrorRow; ERROR_ROWS],
    used_errors: usize,
    error_replies: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Row {
    stat: usize,
    calls: u64,
    nanos: u64,
    rejected: u64,
    failed: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct ErrorRow {
    code: [u8; MAX_CODE_LEN],
    len: u8,
    count: u64,
}

impl ConnStats {
    /// The clock at the start of a command: where the previous command of
    /// the batch ended, or now.
    #[inline]
    pub fn start(&mut self, node: &CommandStats) -> u64 {
        match self.mark {
            0 => node.clock.raw(),
            mark => mark,
        }
    }

    /// Counts a request that started at `start` and answered `error` (if it
    /// answered an error). Returns what the slow log and the latency
    /// monitor must see, if anything.
    #[inline]
    pub fn finish(
        &mut self,
        node: &CommandStats,
        runtime: &Runtime,
        start: u64,
        ran: Ran,
        error: Option<&[u8]>,
    ) -> Option<Slow> {
        let end = node.clock.raw();
        self.mark = end;
        if let Some(text) = error {
            self.count_error(node, text);
        }
        let (stat, fast) = match ran {
            Ran::Unknown => return None,
            Ran::Rejected(stat) => {
                self.row(node, stat).rejected += 1;
                return None;
            }
            Ran::Queued(stat) => {
                if error.is_some() {
                    self.row(node, stat).rejected += 1;
                }
                return None;
            }
            Ran::Called { stat, fast } => (stat, fast),
        };
        let nanos = node.clock.delta_as_nanos(start, end);
        let row = self.row(node, stat);
        row.calls += 1;
        row.nanos += nanos;
        row.failed += u64::from(error.is_some());
        let micros = nanos / 1000;
        let slowlog = runtime
            .slowlog_slower_than_us()
            .is_some_and(|us| micros >= us);
        let latency = runtime
            .latency_threshold_ms()
            .is_some_and(|ms| micros / 1000 >= ms);
        (slowlog || latency).then(|| Slow {
            micros,
            fast,
            slowlog: stat != *EXEC,
        })
    }

    /// The pending row of `stat`, taking a free one (or adding every row to
    /// the node's counters first when none is free).
    #[inline]
    fn row(&mut self, node: &CommandStats, stat: usize) -> &mut Row {
        let at = match self.rows[..self.used].iter().position(|r| r.stat == stat) {
            Some(at) => at,
            None => {
                if self.used == ROWS {
                    self.flush_rows(node);
                }
                self.used += 1;
                self.rows[self.used - 1] = Row {
                    stat,
                    ..Row::default()
                };
                self.used - 1
            }
        };
        &mut self.rows[at]
    }

    fn count_error(&mut self, node: &CommandStats, text: &[u8]) {
        self.error_replies += 1;
        let code = error_code(text);
        let found = self.errors[..self.used_errors]
            .iter()
            .position(|row| &row.code[..usize::from(row.len)] == code);
        let at = match found {
            Some(at) => at,
            None => {
                if self.used_errors == ERROR_ROWS {
                    self.flush_errors(node);
                }
                let mut row = ErrorRow {
                    len: code.len() as u8, // at most MAX_CODE_LEN
                    ..ErrorRow::default()
                };
                row.code[..code.len()].copy_from_slice(code);
                self.errors[self.used_errors] = row;
                self.used_errors += 1;
                self.used_errors - 1
            }
        };
        self.errors[at].count += 1;
    }

    /// Adds everything pending to the node's counters: at the end of a
    /// batch, and before INFO reports them.
    pub fn flush(&mut self, node: &CommandStats) {
        self.flush_rows(node);
        self.flush_errors(node);
    }

    /// The batch is over: adds everything pending to the node's counters,
    /// and the next command reads the clock afresh.
    pub fn end_batch(&mut self, node: &CommandStats) {
        self.flush(node);
        self.mark = 0;
    }

    /// Forgets what is pending (`CONFIG RESETSTAT`).
    pub fn clear(&mut self) {
        self.used = 0;
        self.used_errors = 0;
        self.error_replies = 0;
    }

    fn flush_rows(&mut self, node: &CommandStats) {
        for row in &self.rows[..self.used] {
            let Some(counters) = node.counters.get(row.stat) else {
                continue;
            };
            for (counter, n) in [
                (&counters.calls, row.calls),
                (&counters.nanos, row.nanos),
                (&counters.rejected, row.rejected),
                (&counters.failed, row.failed),
            ] {
                if n > 0 {
                    counter.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        self.used = 0;
    }

    fn flush_errors(&mut self, node: &CommandStats) {
        if self.error_replies > 0 {
            node.error_replies
                .fetch_add(self.error_replies, Ordering::Relaxed);
            self.error_replies = 0;
        }
        if self.used_errors > 0 {
            let mut errors = lock(&node.errors);
            for row in &self.errors[..self.used_errors] {
                errors.add(&row.code[..usize::from(row.len)], row.count);
            }
            self.used_errors = 0;
        }
    }
}

/// EXEC's row: the one command the slow log skips.
static EXEC: LazyLock<usize> = LazyLock::new(|| command::position(b"exec").unwrap_or(usize::MAX));

/// How many arguments of a command the slow log keeps, as in Redis: beyond
/// it, the last one kept says how many more there were.
pub const SLOWLOG_MAX_ARGS: usize = 32;
/// How many bytes of an argument the slow log keeps, as in Redis.
pub const SLOWLOG_MAX_ARG_LEN: usize = 128;

/// One entry of the slow log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowEntry {
    pub id: u64,
    /// Unix time, in seconds, when the command ended.
    pub time: u64,
    pub micros: u64,
    /// The arguments, command name first, as the client sent them but
    /// shortened (see [`SlowEntry::new`]).
    pub args: Vec<Vec<u8>>,
    /// The client's `ip:port`.
    pub addr: String,
    /// The client's name, empty if it has none.
    pub name: String,
}

impl SlowEntry {
    /// An entry for these arguments, shortened as Redis shortens them: at
    /// most [`SLOWLOG_MAX_ARGS`] (the last saying `... (N more
    /// arguments)`), each at most [`SLOWLOG_MAX_ARG_LEN`] bytes followed by
    /// `... (N more bytes)`. Passwords (AUTH's arguments, the two after
    /// HELLO's `AUTH`) are replaced by `(redacted)`, as Redis does.
    pub fn new(args: Args<'_>, addr: String, name: String) -> SlowEntry {
        let argc = args.len();
        let kept = match argc > SLOWLOG_MAX_ARGS {
            true => SLOWLOG_MAX_ARGS - 1,
            false => argc,
        };
        let mut entry_args: Vec<Vec<u8>> = (0..kept)
            .map(|at| {
                let arg = args.get(at).unwrap_or_default();
                if is_password(args, at) {
                    return b"(redacted)".to_vec();
                }
                match arg.len() > SLOWLOG_MAX_ARG_LEN {
                    true => {
                        let more = arg.len() - SLOWLOG_MAX_ARG_LEN;
                        let mut short = arg[..SLOWLOG_MAX_ARG_LEN].to_vec();
                        short.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
                        short
                    }
                    false => arg.to_vec(),
                }
            })
            .collect();
        if argc > kept {
            let more = argc - kept;
            entry_args.push(format!("... ({more} more arguments)").into_bytes());
        }
        SlowEntry {
            id: 0,
            time: 0,
            micros: 0,
            args: entry_args,
            addr,
            name,
        }
    }
}

/// True if argument `at` of a request is a password.
fn is_password(args: Args<'_>, at: usize) -> bool {
    let word = |i: usize| args.get(i).unwrap_or_default();
    let name = word(0);
    if name.eq_ignore_ascii_case(b"auth") {
        return at >= 1;
    }
    // HELLO [protover [AUTH username password] [SETNAME name]]
    name.eq_ignore_ascii_case(b"hello")
        && at >= 3
        && (at.saturating_sub(2)..at).any(|i| i >= 2 && word(i).eq_ignore_ascii_case(b"auth"))
}

/// The slow log: the newest entries first, at most `slowlog-max-len`.
#[derive(Debug, Default)]
pub struct SlowLog {
    entries: VecDeque<SlowEntry>,
    next_id: u64,
}

impl SlowLog {
    /// Adds an entry (giving it the next id) and drops the oldest beyond
    /// `max_len`.
    pub fn push(&mut self, mut entry: SlowEntry, max_len: usize) {
        entry.id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(entry);
        self.entries.truncate(max_len);
    }

    /// The newest entries first.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &SlowEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// SLOWLOG RESET: ids go on from where they were, as in Redis.
    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// How many samples the latency monitor keeps per event, as Redis does.
pub const LATENCY_SAMPLES: usize = 160;

/// One sample: the worst latency seen in one second.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LatencySample {
    /// Unix time, in seconds.
    pub time: u64,
    pub ms: u64,
}

/// One event's samples (a ring) and its worst latency ever.
#[derive(Debug, Clone)]
pub struct LatencySeries {
    samples: [LatencySample; LATENCY_SAMPLES],
    next: usize,
    pub max: u64,
}

impl Default for LatencySeries {
    fn default() -> Self {
        LatencySeries {
            samples: [LatencySample::default(); LATENCY_SAMPLES],
            next: 0,
            max: 0,
        }
    }
}

impl LatencySeries {
    /// Adds a sample; several in one second keep only the worst.
    fn add(&mut self, time: u64, ms: u64) {
        self.max = self.max.max(ms);
        let last = (self.next + LATENCY_SAMPLES - 1) % LATENCY_SAMPLES;
        if self.samples[last].time == time {
            self.samples[last].ms = self.samples[last].ms.max(ms);
            return;
        }
        self.samples[self.next] = LatencySample { time, ms };
        self.next = (self.next + 1) % LATENCY_SAMPLES;
    }

    /// The newest sample.
    pub fn latest(&self) -> LatencySample {
        self.samples[(self.next + LATENCY_SAMPLES - 1) % LATENCY_SAMPLES]
    }

    /// Every sample kept, oldest first.
    pub fn history(&self) -> impl Iterator<Item = LatencySample> + '_ {
        (0..LATENCY_SAMPLES)
            .map(|i| self.samples[(self.next + i) % LATENCY_SAMPLES])
            .filter(|sample| sample.time != 0)
    }
}

/// The latency monitor's events (`command`, `fast-command`), by name.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    events: BTreeMap<&'static str, LatencySeries>,
}

impl LatencyMonitor {
    pub fn add(&mut self, event: &'static str, time: u64, ms: u64) {
        self.events.entry(event).or_default().add(time, ms);
    }

    /// Every event with samples, by name.
    pub fn events(&self) -> impl Iterator<Item = (&'static str, &LatencySeries)> {
        self.events.iter().map(|(&name, series)| (name, series))
    }

    pub fn event(&self, name: &[u8]) -> Option<&LatencySeries> {
        self.events
            .iter()
            .find(|(event, _)| event.as_bytes() == name)
            .map(|(_, series)| series)
    }

    /// LATENCY RESET: forgets the named events (or all of them when none is
    /// named); returns how many had samples.
    pub fn reset<'a>(&mut self, names: impl ExactSizeIterator<Item = &'a [u8]>) -> usize {
        if names.len() == 0 {
            let count = self.events.len();
            self.events.clear();
            return count;
        }
        let mut count = 0;
        for name in names {
            let found = self
                .events
                .keys()
                .find(|event| event.as_bytes() == name)
                .copied();
            if let Some(event) = found {
                self.events.remove(event);
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests;
