//! A MULTI/EXEC workload for `bench/transactions.sh`, against any server that
//! speaks RESP (Keycafe or redis-server), since redis-benchmark has no
//! transaction test.
//!
//! ```text
//! cargo run --release -p keycafe-server --example multi_exec -- \
//!     --addr 127.0.0.1:6379 --transactions 200000 --connections 50 --pipeline 1
//! ```
//!
//! Each transaction is `MULTI`, `INCR {k:N}:a`, `INCR {k:N}:b`, `EXEC` with a
//! random N below `--keys`, sent in one write; a connection keeps
//! `--pipeline` transactions in flight. Its replies are six lines (`+OK`,
//! two `+QUEUED`, `*2` and two integers), which is all this client reads.
//! Prints one line of `key=value` pairs: transactions per second and the
//! commands per second they amount to (four per transaction).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Options {
    addr: String,
    transactions: u64,
    connections: usize,
    pipeline: usize,
    keys: u64,
}

fn options() -> Options {
    let mut options = Options {
        addr: "127.0.0.1:9814".into(),
        transactions: 200_000,
        connections: 50,
        pipeline: 1,
        keys: 100_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            panic!("flags come in pairs: --name value");
        };
        let number = || value.parse::<u64>().expect("a number");
        match flag.as_str() {
            "--addr" => options.addr = value.clone(),
            "--transactions" => options.transactions = number(),
            "--connections" => options.connections = number() as usize,
            "--pipeline" => options.pipeline = number() as usize,
            "--keys" => options.keys = number().max(1),
            other => panic!("unknown flag {other}"),
        }
    }
    options
}

/// Lines of reply to one transaction.
const LINES_PER_TRANSACTION: usize = 6;

fn transaction(n: u64, out: &mut Vec<u8>) {
    let key = |suffix: &str| format!("{{k:{n}}}:{suffix}");
    out.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
    for suffix in ["a", "b"] {
        let key = key(suffix);
        out.extend_from_slice(
            format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
        );
    }
    out.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
}

async fn connection(options: Arc<Options>, left: Arc<AtomicU64>, seed: u64) {
    let mut stream = TcpStream::connect(&options.addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut random = seed | 1;
    let mut request = Vec::new();
    let mut input = vec![0u8; 64 * 1024];
    loop {
        let batch = (0..options.pipeline)
            .take_while(|_| {
                left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            })
            .count();
        if batch == 0 {
            return;
        }
        request.clear();
        for _ in 0..batch {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            transaction(random % options.keys, &mut request);
        }
        stream.write_all(&request).await.expect("write");
        let mut lines = 0;
        while lines < batch * LINES_PER_TRANSACTION {
            let read = stream.read(&mut input).await.expect("read");
            assert!(read > 0, "the server closed the connection");
            assert!(
                !input[..read].contains(&b'-'),
                "an error reply: {}",
                String::from_utf8_lossy(&input[..read])
            );
            lines += input[..read].iter().filter(|&&b| b == b'\n').count();
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = Arc::new(options());
    let left = Arc::new(AtomicU64::new(options.transactions));
    let started = Instant::now();
    let tasks: Vec<_> = (0..options.connections)
        .map(|i| {
            tokio::spawn(connection(
                options.clone(),
                left.clone(),
                0x9e37_79b9_7f4a_7c15 ^ i as u64,
            ))
        })
        .collect();
    for task in tasks {
        task.await.expect("a connection task panicked");
    }
    let seconds = started.elapsed().as_secs_f64();
    let per_second = options.transactions as f64 / seconds;
    println!(
        "transactions={} seconds={seconds:.3} transactions_per_second={per_second:.0} commands_per_second={:.0}",
        options.transactions,
        per_second * 4.0
    );
}
