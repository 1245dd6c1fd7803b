//! `keycafe-cli`: a redis-cli for Keycafe.
//!
//! ```text
//! keycafe-cli [-h host] [-p port] [-a password] [-c] [--resp]
//!             [--tls --cacert ca.crt [--cert client.crt --key client.key] [--sni name]]
//!             [--scan [--pattern glob]] [command args...]
//! ```
//!
//! With a command it runs it once, prints the reply and exits (non-zero if it
//! could not connect). Without one it opens a prompt (`127.0.0.1:9814> `) with
//! line editing and history (rustyline, saved in `~/.keycafecli_history`).
//! Lines are split with redis-cli's quoting rules ([`split`]), replies are
//! printed exactly as redis-cli prints them ([`format`](mod@format)): the human form on a
//! terminal, the raw values when stdout is a pipe (`--raw` / `--no-raw`
//! override the choice). `-c` follows `MOVED` and `ASK` redirects (sending
//! `ASKING` before an `ASK` retry), at most [`MAX_REDIRECTS`] times per
//! command.
//!
//! `--scan` lists the node's keys (those matching `--pattern`), one per
//! line, by walking SCAN to its end, as `redis-cli --scan` does.
//!
//! It speaks the native protocol by default and RESP2 with `--resp`, so it
//! works against a Keycafe node either way and against redis-server too. It
//! is built directly on keycafe-core's codecs (see `common/wire.rs`) rather
//! than on the client library, so that it shows exactly what goes on the wire.

#[path = "common/server_args.rs"]
mod server_args;
#[path = "common/wire.rs"]
mod wire;

#[path = "keycafe-cli/format.rs"]
mod format;
#[path = "keycafe-cli/split.rs"]
mod split;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use keycafe_core::tls::Connector;
use keycafe_core::{Frame, Protocol};
use rustyline::error::ReadlineError;

use format::{Output, format_reply};
use server_args::ServerArgs;
use split::split_args;
use wire::{Redirect, Wire, join_host_port};

/// Redirects followed for one command before its last reply is shown as is.
const MAX_REDIRECTS: usize = 16;

/// Command-line interface to a Keycafe node, in the manner of redis-cli.
#[derive(Parser, Debug)]
#[command(name = "keycafe-cli", version, disable_help_flag = true)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Don't warn that a password on the command line may be visible to others.
    #[arg(long)]
    no_auth_warning: bool,
    /// Cluster mode: follow MOVED and ASK redirects.
    #[arg(short = 'c')]
    cluster: bool,
    /// Speak RESP2 instead of Keycafe's native protocol.
    #[arg(long)]
    resp: bool,
    /// Print raw values even on a terminal.
    #[arg(long, conflicts_with = "no_raw")]
    raw: bool,
    /// Print formatted replies even when stdout is not a terminal.
    #[arg(long)]
    no_raw: bool,
    /// Exit with a non-zero code when the command's reply is an error.
    #[arg(short = 'e')]
    errexit: bool,
    /// List the node's keys with SCAN, one per line.
    #[arg(long)]
    scan: bool,
    /// With --scan: only keys matching this glob pattern.
    #[arg(long, requires = "scan")]
    pattern: Option<String>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// The command to run once; without one, an interactive prompt opens.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Why a command got no reply.
enum Failure {
    Connect(String, anyhow::Error),
    Io(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(addr, err) => {
                write!(f, "Could not connect to Keycafe at {addr}: {err:#}")
            }
            Failure::Io(err) => write!(f, "Error: {err:#}"),
        }
    }
}

/// The connection a CLI run talks through, reconnecting when it has to.
struct Session {
    /// Where to connect now: the node named on the command line, or the
    /// last one a redirect pointed to.
    server: ServerArgs,
    protocol: Protocol,
    cluster: bool,
    interactive: bool,
    wire: Option<Wire>,
    /// TLS settings for every connection (redirects included).
    tls: Option<Connector>,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    fn addr(&self) -> String {
        self.server.addr()
    }

    fn prompt(&self) -> String {
        match self.wire {
            Some(_) => format!("{}> ", self.addr()),
            None => "not connected> ".to_string(),
        }
    }

    /// Connects (if not connected) and authenticates. A failed AUTH is
    /// reported but keeps the connection, as redis-cli does.
    fn connect(&mut self) -> Result<&mut Wire, Failure> {
        if self.wire.is_none() {
            let addr = self.addr();
            let wire = self
                .runtime
                .block_on(async {
                    let mut wire = Wire::connect(&addr, self.protocol, self.tls.as_ref()).await?;
                    if let Some(password) = &self.server.password
                        && let Err(err) = wire.auth(password).await
                    {
                        eprintln!("AUTH failed: {err:#}");
                    }
                    anyhow::Ok(wire)
                })
                .map_err(|err| Failure::Connect(addr, err))?;
            self.wire = Some(wire);
        }
        Ok(self.wire.as_mut().expect("connected just above"))
    }

    /// Sends one command and returns its reply, following redirects in
    /// cluster mode. A broken connection is dropped so the next command
    /// reconnects.
    fn run_command(&mut self, args: &[Vec<u8>]) -> Result<Frame, Failure> {
        let mut asking = false;
        for hop in 0..=MAX_REDIRECTS {
            self.connect()?;
            let runtime = &self.runtime;
            let wire = self.wire.as_mut().expect("connect() succeeded");
            let result = runtime.block_on(async {
                if asking {
                    wire.call(&[b"ASKING"]).await?;
                }
                wire.call(args).await
            });
            let reply = match result {
                Ok(reply) => reply,
                Err(err) => {
                    self.wire = None;
                    return Err(Failure::Io(err));
                }
            };
            let redirect = match &reply {
                Frame::Error(text) if self.cluster && hop < MAX_REDIRECTS => Redirect::parse(text),
                _ => None,
            };
            let Some(redirect) = redirect else {
                return Ok(reply);
            };
            if self.interactive {
                wire::outln!(
                    "-> Redirected to slot [{}] located at {}",
                    redirect.slot,
                    join_host_port(&redirect.host, redirect.port)
                );
            }
            self.server.host = redirect.host;
            self.server.port = redirect.port;
            self.wire = None;
            asking = redirect.ask;
        }
        unreachable!("the last hop returns its reply")
    }
}

fn print_reply(frame: &Frame, output: Output) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`keycafe-cli ... | head`) is not worth a panic.
    let _ = stdout
        .write_all(&format_reply(frame, output))
        .and_then(|()| stdout.flush());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = if cli.raw || (!cli.no_raw && !std::io::stdout().is_terminal()) {
        Output::Raw
    } else {
        Output::Tty
    };
    if cli.server.password.is_some() && !cli.no_auth_warning {
        eprintln!(
            "Warning: Using a password with '-a' option on the command line interface may not be safe."
        );
    }
    let tls = match cli.server.tls_connector() {
        Ok(tls) => tls,
        Err(err) => {
            eprintln!("TLS: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut session = Session {
        server: cli.server,
        protocol: if cli.resp {
            Protocol::Resp2
        } else {
            Protocol::Native
        },
        cluster: cli.cluster,
        interactive: cli.command.is_empty(),
        wire: None,
        tls,
        runtime,
    };
    if cli.scan {
        return scan(&mut session, cli.pattern.as_deref());
    }
    if cli.command.is_empty() {
        repl(&mut session, output);
        return ExitCode::SUCCESS;
    }
    let args: Vec<Vec<u8>> = cli.command.into_iter().map(String::into_bytes).collect();
    match session.run_command(&args) {
        Ok(Frame::Error(text)) if cli.errexit => {
            eprintln!("{}", String::from_utf8_lossy(&text));
            ExitCode::FAILURE
        }
        Ok(reply) => {
            print_reply(&reply, output);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}

/// `--scan`: walks SCAN from cursor 0 back to 0, printing each key.
fn scan(session: &mut Session, pattern: Option<&str>) -> ExitCode {
    let mut cursor = b"0".to_vec();
    loop {
        let mut args = vec![b"SCAN".to_vec(), cursor.clone()];
        if let Some(pattern) = pattern {
            args.extend([b"MATCH".to_vec(), pattern.as_bytes().to_vec()]);
        }
        args.extend([b"COUNT".to_vec(), b"1000".to_vec()]);
        let page = match session.run_command(&args) {
            Ok(Frame::Array(page)) => page,
            Ok(other) => {
                print_reply(&other, format::Output::Raw);
                return ExitCode::FAILURE;
            }
            Err(failure) => {
                eprintln!("{failure}");
                return ExitCode::FAILURE;
            }
        };
        let (Some(Frame::Bulk(next)), Some(Frame::Array(keys))) = (page.first(), page.get(1))
        else {
            eprintln!("Error: SCAN answered something other than a cursor and keys");
            return ExitCode::FAILURE;
        };
        let mut stdout = std::io::stdout().lock();
        for key in keys {
            if let Frame::Bulk(key) = key
                && stdout
                    .write_all(key)
                    .and_then(|()| stdout.write_all(b"\n"))
                    .is_err()
            {
                // A closed stdout (`keycafe-cli --scan | head`) ends the walk.
                return ExitCode::SUCCESS;
            }
        }
        if &next[..] == b"0" {
            return ExitCode::SUCCESS;
        }
        cursor = next.to_vec();
    }
}

/// The interactive prompt. Without a terminal on stdin, rustyline reads
/// plain lines, so `printf 'set a 1\nget a\n' | keycafe-cli` works as well.
fn repl(session: &mut Session, output: Output) {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(err) => {
            eprintln!("cannot open the line editor: {err}");
            return;
        }
    };
    let history = std::env::var_os("HOME")
        .map(|home| std::path::Path::new(&home).join(".keycafecli_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    if let Err(failure) = session.connect() {
        eprintln!("{failure}");
    }
    loop {
        let line = match editor.readline(&session.prompt()) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(err) => {
                eprintln!("{err}");
                break;
            }
        };
        let Ok(mut args) = split_args(&line) else {
            wire::outln!("Invalid argument(s)");
            continue;
        };
        if args.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        match args[0].to_ascii_lowercase().as_slice() {
            b"quit" | b"exit" => break,
            b"clear" => {
                print!("\x1b[H\x1b[2J");
                continue;
            }
            _ => {}
        }
        // `3 incr counter` runs the command three times, as in redis-cli.
        let mut repeat = 1;
        if args.len() > 1
            && let Some(n) = std::str::from_utf8(&args[0])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        {
            repeat = n;
            args.remove(0);
        }
        for _ in 0..repeat {
            match session.run_command(&args) {
                Ok(reply) => print_reply(&reply, output),
                Err(failure) => {
                    eprintln!("{failure}");
                    break;
                }
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
}
