//! The flags that name the server, shared by `keycafe-cli` and
//! `keycafe-benchmark`: `-h`, `-p` and `-a`, as redis-cli and
//! redis-benchmark spell them (which is why neither tool has `-h` for help).

use crate::wire::join_host_port;

/// Where to connect, and the password to AUTH with there.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Server hostname (in cluster mode, the first node asked).
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(short = 'p', long = "port", default_value_t = 9814)]
    pub port: u16,
    /// Password to AUTH with on every connection.
    #[arg(short = 'a', long = "pass")]
    pub password: Option<String>,
}

impl ServerArgs {
    /// `host:port`, with an IPv6 host in brackets.
    pub fn addr(&self) -> String {
        join_host_port(&self.host, self.port)
    }
}
