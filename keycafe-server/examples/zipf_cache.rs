//! A cache workload for `bench/eviction.sh`: GET a key drawn from a Zipf
//! distribution, and SET it on a miss, against any server that speaks RESP
//! (Keycafe or redis-server), so that both meet exactly the same requests.
//!
//! ```text
//! cargo run --release -p keycafe-server --example zipf_cache -- \
//!     --addr 127.0.0.1:6379 --keys 1000000 --skew 0.99 --warmup 2000000 --ops 2000000
//! ```
//!
//! Key `k:<rank>` has rank `rank` in the distribution (0 is the most
//! popular) and a value of 100 to 1000 bytes, its size a fixed function of
//! the rank, so every run stores the same bytes for the same key. Each
//! connection sends `--pipeline` GETs at once, then the SETs for those that
//! missed. The first `--warmup` operations fill the cache and are not
//! counted; then the hit ratio (GETs that found their key) and the
//! throughput (GETs and SETs per second) of the next `--ops` are printed as
//! one line of `key=value` pairs. A SET refused (OOM) is counted, not fatal.
//! `--seed` picks the random sequence: give a warm-up run and the measured
//! run after it different seeds, or the second replays the first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Options {
    addr: String,
    keys: usize,
    skew: f64,
    warmup: u64,
    ops: u64,
    connections: usize,
    pipeline: usize,
    seed: u64,
}

fn options() -> Options {
    let mut options = Options {
        addr: "127.0.0.1:9814".into(),
        keys: 1_000_000,
        skew: 0.99,
        warmup: 2_000_000,
        ops: 2_000_000,
        connections: 8,
        pipeline: 16,
        seed: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            panic!("flags come in pairs: --name value");
        };
        let number = || value.parse::<u64>().expect("a number");
        match flag.as_str() {
            "--addr" => options.addr = value.clone(),
            "--keys" => options.keys = number() as usize,
            "--skew" => options.skew = value.parse().expect("a number"),
            "--warmup" => options.warmup = number(),
            "--ops" => options.ops = number(),
            "--connections" => options.connections = number() as usize,
            "--pipeline" => options.pipeline = number() as usize,
            "--seed" => options.seed = number(),
            other => panic!("unknown flag {other}"),
        }
    }
    options
}

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^skew,
/// by binary search in the cumulative distribution.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, skew: f64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(skew);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }

    /// The rank for `uniform`, a number in [0, 1).
    fn rank(&self, uniform: f64) -> usize {
        self.cdf
            .partition_point(|&c| c < uniform)
            .min(self.cdf.len() - 1)
    }
}

/// xorshift64*: a fast generator, one per connection.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The value size of a rank: 100 to 1000 bytes, fixed per key.
fn value_len(rank: usize) -> usize {
    let mut x = rank as u64 ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    100 + (x ^ (x >> 31)) as usize % 901
}

/// Counts shared by the connections.
#[derive(Default)]
struct Counts {
    /// Operations started, warm-up included: the connections stop at
    /// `warmup + ops`.
    issued: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    refused: AtomicU64,
}

fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// One reply of a GET or SET, read from `buf` starting at `at`: `Some((found
/// or ok, end))` once complete.
fn parse_reply(buf: &[u8], at: usize) -> Option<(bool, usize)> {
    let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
    let line = &buf[at..line_end];
    match line.first()? {
        b'+' => Some((true, line_end + 2)),
        b'-' => Some((false, line_end + 2)),
        b'$' if line == b"$-1" => Some((false, line_end + 2)),
        b'$' => {
            let len: usize = std::str::from_utf8(&line[1..]).ok()?.parse().ok()?;
            let end = line_end + 2 + len + 2;
            (buf.len() >= end).then_some((true, end))
        }
        other => panic!("unexpected reply type {:?}", char::from(*other)),
    }
}

/// Sends `out` and reads `count` replies; returns whether each was a hit
/// (GET) or an OK (SET).
async fn round_trip(
    stream: &mut TcpStream,
    out: &[u8],
    count: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Vec<bool>> {
    stream.write_all(out).await?;
    let mut replies = Vec::with_capacity(count);
    let mut at = 0;
    buf.clear();
    while replies.len() < count {
        match parse_reply(buf, at) {
            Some((ok, end)) => {
                replies.push(ok);
                at = end;
            }
            None => {
                let mut chunk = [0u8; 64 * 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    Ok(replies)
}

async fn connection(
    options: Arc<Options>,
    zipf: Arc<Zipf>,
    counts: Arc<Counts>,
    seed: u64,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(&options.addr).await?;
    stream.set_nodelay(true)?;
    let mut rng = Rng(seed | 1);
    let values = vec![b'v'; 1000];
    let (mut out, mut buf) = (Vec::new(), Vec::new());
    let total = options.warmup + options.ops;
    loop {
        let first = counts
            .issued
            .fetch_add(options.pipeline as u64, Ordering::Relaxed);
        if first >= total {
            return Ok(());
        }
        let measured = first >= options.warmup;
        let ranks: Vec<usize> = (0..options.pipeline)
            .map(|_| zipf.rank(rng.uniform()))
            .collect();
        out.clear();
        for rank in &ranks {
            push_command(&mut out, &[b"GET", format!("k:{rank}").as_bytes()]);
        }
        let found = round_trip(&mut stream, &out, ranks.len(), &mut buf).await?;
        let missed: Vec<usize> = ranks
            .iter()
            .zip(&found)
            .filter(|(_, hit)| !**hit)
            .map(|(rank, _)| *rank)
            .collect();
        if measured {
            let hits = (ranks.len() - missed.len()) as u64;
            counts.hits.fetch_add(hits, Ordering::Relaxed);
            counts
                .misses
                .fetch_add(missed.len() as u64, Ordering::Relaxed);
        }
        if missed.is_empty() {
            continue;
        }
        out.clear();
        for rank in &missed {
            let key = format!("k:{rank}");
            push_command(
                &mut out,
                &[b"SET", key.as_bytes(), &values[..value_len(*rank)]],
            );
        }
        let stored = round_trip(&mut stream, &out, missed.len(), &mut buf).await?;
        if measured {
            let refused = stored.iter().filter(|ok| !**ok).count() as u64;
            counts
                .sets
                .fetch_add(missed.len() as u64, Ordering::Relaxed);
            counts.refused.fetch_add(refused, Ordering::Relaxed);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = Arc::new(options());
    let zipf = Arc::new(Zipf::new(options.keys, options.skew));
    let counts = Arc::new(Counts::default());
    // The clock starts when the warm-up is over: the first connection to
    // pass it starts it.
    let started = Arc::new(std::sync::OnceLock::<Instant>::new());
    let watcher = {
        let (counts, started, warmup) = (counts.clone(), started.clone(), options.warmup);
        tokio::spawn(async move {
            while counts.issued.load(Ordering::Relaxed) < warmup {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            started.get_or_init(Instant::now);
        })
    };
    let tasks: Vec<_> = (0..options.connections)
        .map(|i| {
            // Distinct per connection and per run: two runs with different
            // seeds draw different sequences from the same distribution.
            let seed = options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((i as u64 + 1) * 7919);
            tokio::spawn(connection(
                options.clone(),
                zipf.clone(),
                counts.clone(),
                seed,
            ))
        })
        .collect();
    for task in tasks {
        task.await
            .expect("connection task")
            .expect("the server answered");
    }
    let elapsed = started
        .get()
        .map_or(f64::NAN, |start| start.elapsed().as_secs_f64());
    watcher.abort();
    let hits = counts.hits.load(Ordering::Relaxed);
    let misses = counts.misses.load(Ordering::Relaxed);
    let sets = counts.sets.load(Ordering::Relaxed);
    let gets = hits + misses;
    println!(
        "hits={hits} misses={misses} hit_ratio={:.4} sets={sets} refused={} seconds={elapsed:.2} ops_per_sec={:.0} gets_per_sec={:.0}",
        hits as f64 / gets.max(1) as f64,
        counts.refused.load(Ordering::Relaxed),
        (gets + sets) as f64 / elapsed,
        gets as f64 / elapsed,
    );
}
