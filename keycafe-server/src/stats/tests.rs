use super::*;
use crate::config::Config;

fn runtime() -> Runtime {
    Runtime::new(&Config::default())
}

/// CONFIG SET, on a runtime of its own.
fn set(runtime: &Runtime, pairs: &[(&str, &str)]) {
    let config = Config::default();
    let store = std::sync::Arc::new(crate::store::Store::new());
    let node = crate::runtime::Node {
        config: &config,
        runtime,
        store: &store,
        persistence: None,
    };
    crate::runtime::set_all(node, pairs).unwrap();
}

fn row(name: &str) -> usize {
    command::position(name.as_bytes()).expect("a command of the table")
}

fn counts(node: &CommandStats, name: &str) -> CommandCounts {
    node.commands()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, counts)| counts)
        .unwrap_or_default()
}

fn args(words: &[&str]) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let mut source = Vec::new();
    let mut spans = Vec::new();
    for word in words {
        let start = source.len();
        source.extend_from_slice(word.as_bytes());
        spans.push(start..source.len());
    }
    (source, spans)
}

#[test]
fn counts_stay_with_the_connection_until_the_batch_ends() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    let get = Ran::Called {
        stat: row("get"),
        fast: true,
    };
    for _ in 0..3 {
        let start = conn.start(&node);
        assert!(conn.finish(&node, &runtime, start, get, None).is_none());
    }
    let start = conn.start(&node);
    conn.finish(&node, &runtime, start, get, Some(b"WRONGTYPE Operation"));
    let start = conn.start(&node);
    conn.finish(
        &node,
        &runtime,
        start,
        Ran::Rejected(row("set")),
        Some(b"ERR wrong"),
    );
    let start = conn.start(&node);
    conn.finish(
        &node,
        &runtime,
        start,
        Ran::Unknown,
        Some(b"ERR unknown command"),
    );
    // Nothing shared was written yet.
    assert!(node.commands().is_empty());
    assert_eq!(node.error_replies(), 0);
    conn.end_batch(&node);
    let get = counts(&node, "get");
    assert_eq!((get.calls, get.failed, get.rejected), (4, 1, 0));
    let set = counts(&node, "set");
    assert_eq!((set.calls, set.failed, set.rejected), (0, 0, 1));
    assert_eq!(node.error_replies(), 3);
    assert_eq!(
        node.errors(),
        [("ERR".to_string(), 2), ("WRONGTYPE".to_string(), 1)]
    );
    // A second batch adds to the first.
    let start = conn.start(&node);
    conn.finish(
        &node,
        &runtime,
        start,
        Ran::Called {
            stat: row("get"),
            fast: true,
        },
        None,
    );
    conn.end_batch(&node);
    assert_eq!(counts(&node, "get").calls, 5);
}

#[test]
fn a_batch_of_many_commands_overflows_into_the_node() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    let names = [
        "get", "set", "incr", "decr", "mget", "mset", "del", "exists", "ttl", "type",
    ];
    for name in names.iter().chain(&names) {
        let start = conn.start(&node);
        let ran = Ran::Called {
            stat: row(name),
            fast: false,
        };
        conn.finish(&node, &runtime, start, ran, None);
    }
    conn.end_batch(&node);
    for name in names {
        assert_eq!(counts(&node, name).calls, 2, "{name}");
    }
}

#[test]
fn queued_commands_count_only_when_refused() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    let start = conn.start(&node);
    conn.finish(&node, &runtime, start, Ran::Queued(row("set")), None);
    let start = conn.start(&node);
    conn.finish(
        &node,
        &runtime,
        start,
        Ran::Queued(row("get")),
        Some(b"MOVED 1 x"),
    );
    conn.end_batch(&node);
    assert_eq!(counts(&node, "set"), CommandCounts::default());
    assert_eq!(counts(&node, "get").rejected, 1);
    assert_eq!(node.errors(), [("MOVED".to_string(), 1)]);
}

#[test]
fn resetstat_starts_every_counter_again() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    let start = conn.start(&node);
    let ran = Ran::Called {
        stat: row("get"),
        fast: true,
    };
    conn.finish(&node, &runtime, start, ran, Some(b"ERR x"));
    conn.end_batch(&node);
    let start = conn.start(&node);
    conn.finish(&node, &runtime, start, ran, None);
    // CONFIG RESETSTAT drops what this connection has pending too.
    conn.clear();
    node.reset();
    conn.end_batch(&node);
    assert!(node.commands().is_empty());
    assert!(node.errors().is_empty());
    assert_eq!(node.error_replies(), 0);
}

#[test]
fn subcommands_have_rows_of_their_own() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    let config = row("config");
    let get = command::subcommand_position(config, b"GET").expect("config|get");
    let start = conn.start(&node);
    let ran = Ran::Called {
        stat: command::COMMANDS.len() + get,
        fast: false,
    };
    conn.finish(&node, &runtime, start, ran, None);
    conn.end_batch(&node);
    assert_eq!(counts(&node, "config|get").calls, 1);
    assert_eq!(counts(&node, "config").calls, 0);
}

#[test]
fn error_codes_are_first_words_of_at_most_32_bytes() {
    assert_eq!(
        error_code(b"WRONGTYPE Operation against a key"),
        b"WRONGTYPE"
    );
    assert_eq!(error_code(b"MOVED 3999 127.0.0.1:6381"), b"MOVED");
    assert_eq!(error_code(b"ERR"), b"ERR");
    assert_eq!(error_code(b""), b"ERR");
    let long = format!("{} after", "X".repeat(40));
    assert_eq!(error_code(long.as_bytes()), b"ERR");
}

#[test]
fn errorstats_keep_at_most_128_codes() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    for n in 0..MAX_ERROR_CODES {
        let text = format!("E{n} failed");
        let start = conn.start(&node);
        conn.finish(&node, &runtime, start, Ran::Unknown, Some(text.as_bytes()));
    }
    conn.end_batch(&node);
    assert_eq!(node.errors().len(), MAX_ERROR_CODES);
    let start = conn.start(&node);
    conn.finish(&node, &runtime, start, Ran::Unknown, Some(b"ONEMORE x"));
    conn.end_batch(&node);
    assert_eq!(node.errors(), [("ERRORSTATS_DISABLED".to_string(), 1)]);
    assert_eq!(node.error_replies(), MAX_ERROR_CODES as u64 + 1);
    node.reset();
    let start = conn.start(&node);
    conn.finish(&node, &runtime, start, Ran::Unknown, Some(b"ERR again"));
    conn.end_batch(&node);
    assert_eq!(node.errors(), [("ERR".to_string(), 1)]);
}

#[test]
fn every_command_is_slow_at_threshold_zero_and_none_at_minus_one() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    let ran = Ran::Called {
        stat: row("get"),
        fast: true,
    };
    // Redis's default: 10 ms, which a GET here does not take.
    let start = conn.start(&node);
    assert!(conn.finish(&node, &runtime, start, ran, None).is_none());
    set(&runtime, &[("slowlog-log-slower-than", "0")]);
    let start = conn.start(&node);
    let slow = conn
        .finish(&node, &runtime, start, ran, None)
        .expect("logged");
    assert!(slow.slowlog && slow.fast);
    let exec = Ran::Called {
        stat: row("exec"),
        fast: false,
    };
    let start = conn.start(&node);
    assert!(
        !conn
            .finish(&node, &runtime, start, exec, None)
            .unwrap()
            .slowlog
    );
    set(&runtime, &[("slowlog-log-slower-than", "-1")]);
    let start = conn.start(&node);
    assert!(conn.finish(&node, &runtime, start, ran, None).is_none());
}

#[test]
fn a_batch_reads_the_clock_once_per_command_plus_one() {
    let node = CommandStats::new();
    let runtime = runtime();
    let mut conn = ConnStats::default();
    let ran = Ran::Called {
        stat: row("get"),
        fast: true,
    };
    let first = conn.start(&node);
    conn.finish(&node, &runtime, first, ran, None);
    // The next command starts where the last one ended...
    let second = conn.start(&node);
    assert_eq!(second, conn.mark);
    assert!(second >= first);
    conn.finish(&node, &runtime, second, ran, None);
    // ...until the batch ends.
    conn.end_batch(&node);
    assert_eq!(conn.mark, 0);
}

#[test]
fn slowlog_ring_keeps_the_newest_entries() {
    let mut log = SlowLog::default();
    let entry = |word: &str| {
        let (source, spans) = args(&["GET", word]);
        SlowEntry::new(
            Args::new(&source, &spans),
            "127.0.0.1:1".into(),
            String::new(),
        )
    };
    for word in ["a", "b", "c", "d"] {
        log.push(entry(word), 3);
    }
    let kept: Vec<(u64, &[u8])> = log.entries().map(|e| (e.id, &e.args[1][..])).collect();
    assert_eq!(kept, [(3, &b"d"[..]), (2, b"c"), (1, b"b")]);
    // A shorter limit applies from the next entry on, as in Redis.
    log.push(entry("e"), 2);
    assert_eq!(log.len(), 2);
    log.reset();
    assert!(log.is_empty());
    // Ids go on after a reset.
    log.push(entry("f"), 2);
    assert_eq!(log.entries().next().unwrap().id, 5);
    log.push(entry("g"), 0);
    assert!(log.is_empty());
}

#[test]
fn slowlog_entries_are_shortened_as_redis_shortens_them() {
    let mut words = vec!["DEL".to_string()];
    words.extend((1..=40).map(|n| n.to_string()));
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (source, spans) = args(&words);
    let entry = SlowEntry::new(Args::new(&source, &spans), String::new(), String::new());
    assert_eq!(entry.args.len(), SLOWLOG_MAX_ARGS);
    assert_eq!(entry.args[30], b"30");
    assert_eq!(entry.args[31], b"... (10 more arguments)");

    let long = "a".repeat(200);
    let (source, spans) = args(&["SET", "k", &long]);
    let entry = SlowEntry::new(Args::new(&source, &spans), String::new(), String::new());
    let expected = format!("{}... (72 more bytes)", "a".repeat(128));
    assert_eq!(entry.args[2], expected.as_bytes());

    // Exactly 32 arguments and 128 bytes are kept whole.
    let words: Vec<String> = (0..32).map(|n| n.to_string()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (source, spans) = args(&words);
    let entry = SlowEntry::new(Args::new(&source, &spans), String::new(), String::new());
    assert_eq!(entry.args.len(), 32);
    assert_eq!(entry.args[31], b"31");
    let exact = "b".repeat(128);
    let (source, spans) = args(&["SET", "k", &exact]);
    let entry = SlowEntry::new(Args::new(&source, &spans), String::new(), String::new());
    assert_eq!(entry.args[2], exact.as_bytes());
}

#[test]
fn slowlog_hides_passwords() {
    let shown = |words: &[&str]| {
        let (source, spans) = args(words);
        let entry = SlowEntry::new(Args::new(&source, &spans), String::new(), String::new());
        entry
            .args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(shown(&["AUTH", "pw"]), ["AUTH", "(redacted)"]);
    assert_eq!(
        shown(&["auth", "default", "pw"]),
        ["auth", "(redacted)", "(redacted)"]
    );
    assert_eq!(
        shown(&["HELLO", "2", "AUTH", "default", "pw", "SETNAME", "x"]),
        [
            "HELLO",
            "2",
            "AUTH",
            "(redacted)",
            "(redacted)",
            "SETNAME",
            "x"
        ]
    );
    assert_eq!(shown(&["HELLO", "3"]), ["HELLO", "3"]);
    assert_eq!(shown(&["SET", "auth", "pw"]), ["SET", "auth", "pw"]);
}

#[test]
fn latency_series_keeps_the_worst_sample_of_each_second() {
    let mut monitor = LatencyMonitor::default();
    monitor.add("command", 100, 20);
    monitor.add("command", 100, 50);
    monitor.add("command", 100, 30);
    monitor.add("command", 101, 10);
    let series = monitor.event(b"command").unwrap();
    let history: Vec<_> = series.history().map(|s| (s.time, s.ms)).collect();
    assert_eq!(history, [(100, 50), (101, 10)]);
    assert_eq!(series.latest(), LatencySample { time: 101, ms: 10 });
    assert_eq!(series.max, 50);
    assert!(monitor.event(b"fast-command").is_none());
}

#[test]
fn latency_series_is_a_ring_of_160() {
    let mut monitor = LatencyMonitor::default();
    for second in 1..=200 {
        monitor.add("command", second, second);
    }
    let series = monitor.event(b"command").unwrap();
    let history: Vec<_> = series.history().map(|s| s.time).collect();
    assert_eq!(history.len(), LATENCY_SAMPLES);
    assert_eq!(history.first(), Some(&41));
    assert_eq!(history.last(), Some(&200));
    assert_eq!(series.max, 200);
}

#[test]
fn latency_reset_counts_the_events_it_forgets() {
    let mut monitor = LatencyMonitor::default();
    monitor.add("command", 1, 5);
    monitor.add("fast-command", 1, 5);
    let none: [&[u8]; 0] = [];
    let named: [&[u8]; 2] = [b"command", b"nosuch"];
    assert_eq!(monitor.reset(named.into_iter()), 1);
    assert_eq!(monitor.events().count(), 1);
    assert_eq!(monitor.reset(none.into_iter()), 1);
    assert_eq!(monitor.events().count(), 0);
}

#[test]
fn slow_commands_reach_the_slowlog_and_the_latency_monitor() {
    let node = CommandStats::new();
    let runtime = runtime();
    let pairs = [
        ("slowlog-log-slower-than", "1000"),
        ("latency-monitor-threshold", "1"),
    ];
    set(&runtime, &pairs);
    let (source, spans) = args(&["KEYS", "*"]);
    let entry = || SlowEntry::new(Args::new(&source, &spans), "10.0.0.1:5".into(), "me".into());
    let slow = Slow {
        micros: 2500,
        fast: false,
        slowlog: true,
    };
    node.note_slow(&runtime, &slow, entry);
    // Under both thresholds: nothing.
    let quick = Slow {
        micros: 900,
        ..slow
    };
    node.note_slow(&runtime, &quick, entry);
    let log = node.slowlog();
    let logged: Vec<_> = log.entries().collect();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].micros, 2500);
    assert_eq!(logged[0].addr, "10.0.0.1:5");
    assert_eq!(logged[0].name, "me");
    assert!(logged[0].time > 1_600_000_000);
    let monitor = node.latency();
    let series = monitor.event(b"command").expect("an event");
    assert_eq!(series.max, 2);
}
