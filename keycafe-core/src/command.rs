//! The command table: every command a Keycafe node serves, what it does to
//! the data, and where its keys are.
//!
//! The node runs commands from it (checking arity, authentication and which
//! port may run what); the slot check reads a command's keys and whether it
//! writes from it; `COMMAND` reports it to Redis clients; and the client
//! crate routes a request by the key positions it gives. Keeping the table
//! here, below all of them, is what keeps those four in agreement: a command
//! added to the node is routed correctly by the client the same day.
//!
//! Key positions follow Redis's command table: `first_key`, `last_key` (a
//! negative value counts from the end) and `step` (2 for `MSET`'s
//! key/value pairs). A command whose `first_key` is 0 has no keys.

mod docs;

use std::sync::LazyLock;

pub use docs::{DOCS, Doc, doc};

/// What a command is, as a set of typed flags.
///
/// [`Flags::WRITE`], [`Flags::READONLY`], [`Flags::DENYOOM`] and
/// [`Flags::FAST`] are the flags Redis's `COMMAND` reports; the others are
/// Keycafe's own policy and are never shown to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Changes data: refused on a replica, paused during a failover.
    pub const WRITE: Flags = Flags(1);
    /// Reads data: a replica may serve it to a `READONLY` connection.
    pub const READONLY: Flags = Flags(1 << 1);
    /// Constant or logarithmic time (Redis's `fast`).
    pub const FAST: Flags = Flags(1 << 2);
    /// Node-to-node: served on the cluster bus port and nowhere else.
    pub const BUS: Flags = Flags(1 << 3);
    /// Also served on the cluster bus port (AUTH, PING, QUIT).
    pub const ON_BUS: Flags = Flags(1 << 4);
    /// Allowed before a connection has authenticated (AUTH, HELLO, QUIT).
    pub const NO_AUTH: Flags = Flags(1 << 5);
    /// May grow memory (Redis's `denyoom`): refused with `OOM` while the
    /// node is over `maxmemory` and cannot evict. Reads and deletions never
    /// are, so a full node can still be read and emptied.
    pub const DENYOOM: Flags = Flags(1 << 6);

    /// The flags Redis's `COMMAND` reports, with their names, in Redis's
    /// order.
    const REPORTED: [(Flags, &'static str); 4] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::FAST, "fast"),
    ];

    /// Both sets of flags.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// True if every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names `COMMAND` shows, in Redis's order.
    pub fn reported_names(self) -> impl Iterator<Item = &'static str> {
        Self::REPORTED
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// Lower-case name, as Redis's `COMMAND` reports it.
    pub name: &'static str,
    /// Exact argument count (name included) when positive; a minimum when
    /// negative.
    pub arity: i32,
    pub flags: Flags,
    /// Position of the first key argument (0: no keys).
    pub first_key: i32,
    /// Position of the last key argument (negative: counted from the end,
    /// -1 being the last argument).
    pub last_key: i32,
    /// Distance between key arguments.
    pub step: i32,
}

impl CommandInfo {
    /// True if the command has this flag (or all of these flags).
    pub fn is(&self, flags: Flags) -> bool {
        self.flags.contains(flags)
    }

    /// For a subcommand (`slowlog|get`), its container's name (`slowlog`).
    pub fn container(&self) -> Option<&'static str> {
        self.name.split_once('|').map(|(container, _)| container)
    }

    /// True if a request of `argc` arguments (name included) has the
    /// right number of them.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity.unsigned_abs() as usize;
        if self.arity >= 0 {
            argc == arity
        } else {
            argc >= arity
        }
    }

    /// The positions of the key arguments in a request of `argc` arguments.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> + Clone + use<> {
        let first = usize::try_from(self.first_key).unwrap_or(0);
        let step = usize::try_from(self.step).unwrap_or(1).max(1);
        let last = match usize::try_from(self.last_key) {
            Ok(last) => last,
            Err(_) => argc.saturating_sub(self.last_key.unsigned_abs() as usize),
        };
        let count = if first == 0 || last < first {
            0
        } else {
            (last - first) / step + 1
        };
        (0..count)
            .map(move |i| first + i * step)
            .take_while(move |&at| at < argc)
    }

    /// The first key of a request (`args[0]` is the command's name): what
    /// a cluster client routes it by. `None` for a command without keys.
    pub fn first_key_of<'a, A: AsRef<[u8]>>(&self, args: &'a [A]) -> Option<&'a [u8]> {
        let at = self.key_positions(args.len()).next()?;
        args.get(at).map(AsRef::as_ref)
    }
}

const W: Flags = Flags::WRITE;
const WF: Flags = Flags::WRITE.with(Flags::FAST);
/// Writes that may grow memory.
const WM: Flags = Flags::WRITE.with(Flags::DENYOOM);
const WMF: Flags = WM.with(Flags::FAST);
const R: Flags = Flags::READONLY;
const RF: Flags = Flags::READONLY.with(Flags::FAST);
const F: Flags = Flags::FAST;
const NONE: Flags = Flags::NONE;
/// PING: on the bus too.
const F_ON_BUS: Flags = Flags::FAST.with(Flags::ON_BUS);
/// HELLO: before authentication.
const F_NO_AUTH: Flags = Flags::FAST.with(Flags::NO_AUTH);
/// QUIT: before authentication, and on the bus too.
const F_ANYWHERE: Flags = Flags::FAST.with(Flags::NO_AUTH).with(Flags::ON_BUS);
/// KC.HELLO and KC.AUTH: how a node authenticates on the bus.
const BUS_NO_AUTH: Flags = Flags::BUS.with(Flags::FAST).with(Flags::NO_AUTH);
const BUS_F: Flags = Flags::BUS.with(Flags::FAST);
const BUS_W: Flags = Flags::BUS.with(Flags::WRITE);
const BUS: Flags = Flags::BUS;

macro_rules! commands {
    ($( $name:literal $arity:literal $flags:ident ($first:literal $last:literal $step:literal) ;)*) => {
        &[$( CommandInfo {
            name: $name, arity: $arity, flags: $flags,
            first_key: $first, last_key: $last, step: $step,
        }, )*]
    };
}

/// Every command, in the order `COMMAND` lists them.
pub static COMMANDS: &[CommandInfo] = commands! {
    // Strings.
    "get"       2 RF (1 1 1);
    "set"      -3 WM (1 1 1);
    "setnx"     3 WMF (1 1 1);
    "setex"     4 WM (1 1 1);
    "psetex"    4 WM (1 1 1);
    "getdel"    2 WF (1 1 1);
    "getex"    -2 WF (1 1 1);
    "mget"     -2 RF (1 -1 1);
    "mset"     -3 WM (1 -1 2);
    "msetnx"   -3 WM (1 -1 2);
    "incr"      2 WMF (1 1 1);
    "decr"      2 WMF (1 1 1);
    "incrby"    3 WMF (1 1 1);
    "decrby"    3 WMF (1 1 1);
    "append"    3 WM (1 1 1);
    "strlen"    2 RF (1 1 1);
    // Strings: ranges, floats, bits and LCS.
    "getset"    3 WMF (1 1 1);
    "getrange"  4 R  (1 1 1);
    "substr"    4 R  (1 1 1);
    "setrange"  4 WM (1 1 1);
    "incrbyfloat" 3 WMF (1 1 1);
    "setbit"    4 WM (1 1 1);
    "getbit"    3 RF (1 1 1);
    "bitcount" -2 R  (1 1 1);
    "bitpos"   -3 R  (1 1 1);
    "bitop"    -4 WM (2 -1 1);
    "lcs"      -3 R  (1 2 1);
    // Keys and expiry.
    "del"      -2 W  (1 -1 1);
    "delete"   -2 W  (1 -1 1);
    "unlink"   -2 WF (1 -1 1);
    "exists"   -2 RF (1 -1 1);
    "expire"   -3 WF (1 1 1);
    "pexpire"  -3 WF (1 1 1);
    "expireat" -3 WF (1 1 1);
    "pexpireat" -3 WF (1 1 1);
    "ttl"       2 RF (1 1 1);
    "pttl"      2 RF (1 1 1);
    "persist"   2 WF (1 1 1);
    "object"   -2 R  (2 2 1);
    "dbsize"    1 RF (0 0 0);
    "flushall" -1 W  (0 0 0);
    "flushdb"  -1 W  (0 0 0);
    // Keyspace: walking it, moving values between keys, introspection.
    "scan"     -2 R  (0 0 0);
    "keys"      2 R  (0 0 0);
    "randomkey" 1 R  (0 0 0);
    "type"      2 RF (1 1 1);
    "touch"    -2 RF (1 -1 1);
    "rename"    3 W  (1 2 1);
    "renamenx"  3 WF (1 2 1);
    "copy"     -3 WM (1 2 1);
    "expiretime" 2 RF (1 1 1);
    "pexpiretime" 2 RF (1 1 1);
    "time"      1 F  (0 0 0);
    "memory"   -2 R  (2 2 1);
    // Connection and server.
    "ping"     -1 F_ON_BUS (0 0 0);
    "echo"      2 F  (0 0 0);
    "auth"     -2 F_NO_AUTH (0 0 0);
    "quit"     -1 F_ANYWHERE (0 0 0);
    "hello"    -1 F_NO_AUTH (0 0 0);
    "select"    2 F  (0 0 0);
    "client"   -2 NONE (0 0 0);
    "command"  -1 NONE (0 0 0);
    "config"   -2 NONE (0 0 0);
    "info"     -1 NONE (0 0 0);
    // Persistence.
    "save"      1 NONE (0 0 0);
    "bgsave"   -1 NONE (0 0 0);
    "bgrewriteaof" 1 NONE (0 0 0);
    "lastsave"  1 F  (0 0 0);
    // Connections: resetting one, watching every command.
    "reset"     1 F_NO_AUTH (0 0 0);
    "monitor"   1 NONE (0 0 0);
    // Transactions.
    "multi"     1 F  (0 0 0);
    "exec"      1 NONE (0 0 0);
    "discard"   1 F  (0 0 0);
    "watch"    -2 F  (1 -1 1);
    "unwatch"   1 F  (0 0 0);
    // Replication.
    "wait"      3 NONE (0 0 0);
    "role"      1 F  (0 0 0);
    // Cluster.
    "cluster"  -2 NONE (0 0 0);
    "asking"    1 F  (0 0 0);
    "readonly"  1 F  (0 0 0);
    "readwrite" 1 F  (0 0 0);
    // Introspection: the slow log and the latency monitor (their
    // subcommands are in SUBCOMMANDS).
    "slowlog"  -2 NONE (0 0 0);
    "latency"  -2 NONE (0 0 0);
    // Cluster bus only.
    "kc.hello"  3 BUS_NO_AUTH (0 0 0);
    "kc.auth"   2 BUS_NO_AUTH (0 0 0);
    "kc.ping"   4 BUS_F (0 0 0);
    "kc.config" 1 BUS_F (0 0 0);
    "kc.import" -2 BUS_W (0 0 0);
    "kc.psync"  5 BUS (0 0 0);
    "kc.failover.pause" 2 BUS (0 0 0);
    "kc.failover.resume" 1 BUS (0 0 0);
};

/// The subcommands of container commands, named `container|sub` as Redis 7
/// names them, each container's together and in the order `COMMAND INFO`
/// lists them. A container with rows here has its subcommand checked (known?
/// right number of arguments?) before it runs, and each subcommand is
/// counted apart in INFO's commandstats; containers without rows (CLIENT,
/// CLUSTER, OBJECT, MEMORY) check their subcommands themselves.
pub static SUBCOMMANDS: &[CommandInfo] = commands! {
    // COMMAND.
    "command|count"   2 NONE (0 0 0);
    "command|docs"   -2 NONE (0 0 0);
    "command|getkeys" -4 NONE (0 0 0);
    "command|getkeysandflags" -4 NONE (0 0 0);
    "command|help"    2 NONE (0 0 0);
    "command|info"   -2 NONE (0 0 0);
    "command|list"   -2 NONE (0 0 0);
    // CONFIG.
    "config|get"     -3 NONE (0 0 0);
    "config|help"     2 NONE (0 0 0);
    "config|resetstat" 2 NONE (0 0 0);
    "config|set"     -4 NONE (0 0 0);
    // SLOWLOG.
    "slowlog|get"    -2 NONE (0 0 0);
    "slowlog|help"    2 NONE (0 0 0);
    "slowlog|len"     2 NONE (0 0 0);
    "slowlog|reset"   2 NONE (0 0 0);
    // LATENCY.
    "latency|doctor"  2 NONE (0 0 0);
    "latency|help"    2 NONE (0 0 0);
    "latency|history" 3 NONE (0 0 0);
    "latency|latest"  2 NONE (0 0 0);
    "latency|reset"  -2 NONE (0 0 0);
};

/// Where each command's subcommands lie in [`SUBCOMMANDS`], by the
/// command's position in [`COMMANDS`] (empty for a command without any).
static SUBCOMMAND_RANGES: LazyLock<Vec<std::ops::Range<usize>>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .map(|info| {
            let of_it = |sub: &CommandInfo| sub.container() == Some(info.name);
            let start = SUBCOMMANDS.iter().position(of_it).unwrap_or(0);
            let len = SUBCOMMANDS[start..].iter().take_while(|s| of_it(s)).count();
            start..start + len
        })
        .collect()
});

/// The subcommands of the command at `position` in [`COMMANDS`], with
/// their positions in [`SUBCOMMANDS`]; empty for a command that has none.
pub fn subcommands_of(position: usize) -> std::ops::Range<usize> {
    SUBCOMMAND_RANGES.get(position).cloned().unwrap_or(0..0)
}

/// Finds a subcommand of the command at `position` in [`COMMANDS`] by its
/// name (`GET` for `slowlog|get`), in any letter case, without allocating:
/// its position in [`SUBCOMMANDS`].
pub fn subcommand_position(position: usize, name: &[u8]) -> Option<usize> {
    subcommands_of(position).find(|&at| {
        let full = SUBCOMMANDS[at].name;
        let sub = full.split_once('|').map_or(full, |(_, sub)| sub);
        sub.as_bytes().eq_ignore_ascii_case(name)
    })
}

/// How many commands and subcommands there are: the size of a table that
/// keeps something per command *and* per subcommand (INFO's commandstats),
/// where a command is at its position in [`COMMANDS`] and a subcommand at
/// `COMMANDS.len()` plus its position in [`SUBCOMMANDS`].
pub fn with_subcommands_len() -> usize {
    COMMANDS.len() + SUBCOMMANDS.len()
}

/// The row at `index` of the table [`with_subcommands_len`] describes.
pub fn with_subcommands(index: usize) -> Option<&'static CommandInfo> {
    COMMANDS
        .get(index)
        .or_else(|| SUBCOMMANDS.get(index.checked_sub(COMMANDS.len())?))
}

/// Command names, found by a cheap hash of their upper-case spelling: the
/// positions in [`COMMANDS`], by open addressing in a power-of-two table
/// kept at most a quarter full. Every request looks its command up here, so
/// it must cost little next to a GET; the standard map's SipHash cost more
/// than the GET itself.
static BY_NAME: LazyLock<NameTable> = LazyLock::new(|| {
    let mut slots = vec![NameTable::EMPTY; (COMMANDS.len() * 4).next_power_of_two()];
    let mask = slots.len() - 1;
    for (index, info) in COMMANDS.iter().enumerate() {
        let mut at = name_hash(info.name.as_bytes()) as usize & mask;
        while slots[at] != NameTable::EMPTY {
            at = (at + 1) & mask;
        }
        slots[at] = u16::try_from(index).expect("fewer than 65535 commands");
    }
    NameTable { slots }
});

struct NameTable {
    /// A position in [`COMMANDS`], or [`NameTable::EMPTY`].
    slots: Vec<u16>,
}

impl NameTable {
    const EMPTY: u16 = u16::MAX;
}

/// FNV-1a over the name's bytes in upper case, so that `get` and `GET`
/// meet. Not resistant to chosen collisions, and need not be: the keys are
/// the fixed command names, and a stranger's name costs one probe sequence
/// of a table three quarters empty.
fn name_hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte.to_ascii_uppercase())).wrapping_mul(0x0100_0193)
    })
}

/// The longest command name, in bytes.
const LONGEST_NAME: usize = 24;

/// Finds a command's position in [`COMMANDS`] by name, in any letter case,
/// without allocating: for tables that keep something per command beside
/// this one (the node's handlers).
pub fn position(name: &[u8]) -> Option<usize> {
    if name.len() > LONGEST_NAME {
        return None;
    }
    let table = &*BY_NAME;
    let mask = table.slots.len() - 1;
    let mut at = name_hash(name) as usize & mask;
    loop {
        let index = *table.slots.get(at)?;
        if index == NameTable::EMPTY {
            return None;
        }
        let index = usize::from(index);
        if COMMANDS[index].name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(index);
        }
        at = (at + 1) & mask;
    }
}

/// Finds a command by name, in any letter case, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    position(name).map(|index| &COMMANDS[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(command: &[&str]) -> Vec<usize> {
        lookup(command[0].as_bytes())
            .expect("known command")
            .key_positions(command.len())
            .collect()
    }

    #[test]
    fn lookup_ignores_case_and_rejects_long_names() {
        assert_eq!(lookup(b"get").map(|c| c.name), Some("get"));
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert_eq!(lookup(b"DELETE").map(|c| c.name), Some("delete"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'x'; 100]).is_none());
    }

    #[test]
    fn every_command_is_found_by_its_name_in_either_case_and_near_misses_are_not() {
        for (index, info) in COMMANDS.iter().enumerate() {
            assert_eq!(position(info.name.as_bytes()), Some(index), "{}", info.name);
            let upper = info.name.to_ascii_uppercase();
            assert_eq!(position(upper.as_bytes()), Some(index), "{upper}");
            let longer = format!("{}x", info.name);
            assert_ne!(position(longer.as_bytes()), Some(index), "{longer}");
            // A shorter name is another command (`incrby` → `ncrby` is
            // none, `set` → `et` none, `psetex` → `setex`), never this one.
            let shorter = &info.name[1..];
            let found = position(shorter.as_bytes()).map(|at| COMMANDS[at].name);
            assert!(
                found.is_none_or(|name| name == shorter),
                "{shorter} found {found:?}"
            );
        }
        assert_eq!(position(b""), None);
    }

    #[test]
    fn names_are_unique_lower_case_and_short() {
        let mut seen = std::collections::HashSet::new();
        for info in COMMANDS {
            assert_eq!(info.name, info.name.to_ascii_lowercase());
            assert!(info.name.len() <= LONGEST_NAME, "{} too long", info.name);
            assert!(seen.insert(info.name), "{} listed twice", info.name);
        }
    }

    #[test]
    fn subcommands_belong_to_their_container() {
        let config = position(b"config").unwrap();
        let subs: Vec<&str> = subcommands_of(config)
            .map(|at| SUBCOMMANDS[at].name)
            .collect();
        assert_eq!(
            subs,
            [
                "config|get",
                "config|help",
                "config|resetstat",
                "config|set"
            ]
        );
        let get = subcommand_position(config, b"GeT").unwrap();
        assert_eq!(SUBCOMMANDS[get].name, "config|get");
        assert!(!SUBCOMMANDS[get].arity_ok(2) && SUBCOMMANDS[get].arity_ok(3));
        assert!(subcommand_position(config, b"nosuch").is_none());
        let get_command = position(b"get").unwrap();
        assert!(subcommands_of(get_command).is_empty());
        assert!(subcommand_position(get_command, b"x").is_none());
        // Every subcommand's container is a command, and its rows are
        // together.
        for sub in SUBCOMMANDS {
            let container = sub.container().expect("container|sub");
            let at = position(container.as_bytes()).expect("a command");
            assert!(subcommands_of(at).any(|i| SUBCOMMANDS[i].name == sub.name));
            assert_eq!(sub.name, sub.name.to_ascii_lowercase());
            assert!(sub.name.len() <= LONGEST_NAME);
        }
        // The statistics' table: commands, then subcommands.
        assert_eq!(with_subcommands_len(), COMMANDS.len() + SUBCOMMANDS.len());
        assert_eq!(with_subcommands(0).map(|c| c.name), Some("get"));
        assert_eq!(
            with_subcommands(COMMANDS.len()).map(|c| c.name),
            Some(SUBCOMMANDS[0].name)
        );
        assert!(with_subcommands(with_subcommands_len()).is_none());
    }

    #[test]
    fn arity() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(7) && !set.arity_ok(2));
    }

    #[test]
    fn key_positions_follow_the_table() {
        assert_eq!(keys(&["GET", "a"]), [1]);
        assert_eq!(keys(&["SET", "a", "v", "EX", "10"]), [1]);
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), [1, 3]);
        assert_eq!(keys(&["DEL", "a", "b", "c"]), [1, 2, 3]);
        // LCS compares two keys.
        assert_eq!(keys(&["LCS", "a", "b", "IDX"]), [1, 2]);
        assert!(keys(&["PING"]).is_empty());
        assert!(keys(&["DBSIZE"]).is_empty());
        // A request shorter than its arity names no key it does not have.
        assert!(keys(&["GET"]).is_empty());
    }

    #[test]
    fn only_writes_that_may_grow_memory_are_denyoom() {
        let denyoom: Vec<_> = COMMANDS
            .iter()
            .filter(|c| c.is(Flags::DENYOOM))
            .map(|c| c.name)
            .collect();
        assert_eq!(
            denyoom,
            [
                "set",
                "setnx",
                "setex",
                "psetex",
                "mset",
                "msetnx",
                "incr",
                "decr",
                "incrby",
                "decrby",
                "append",
                "getset",
                "setrange",
                "incrbyfloat",
                "setbit",
                "bitop",
                "copy"
            ]
        );
        assert!(
            denyoom
                .iter()
                .all(|&name| lookup(name.as_bytes()).unwrap().is(Flags::WRITE))
        );
        // OBJECT's key comes after its subcommand.
        assert_eq!(keys(&["OBJECT", "FREQ", "k"]), [2]);
        assert!(keys(&["OBJECT", "HELP"]).is_empty());
    }

    #[test]
    fn two_key_commands_name_both_keys() {
        // So that the slot check answers CROSSSLOT for keys in two slots.
        assert_eq!(keys(&["RENAME", "a", "b"]), [1, 2]);
        assert_eq!(keys(&["RENAMENX", "a", "b"]), [1, 2]);
        assert_eq!(keys(&["COPY", "a", "b", "REPLACE"]), [1, 2]);
        assert_eq!(keys(&["TOUCH", "a", "b", "c"]), [1, 2, 3]);
        assert_eq!(keys(&["MEMORY", "USAGE", "k", "SAMPLES", "5"]), [2]);
        assert!(keys(&["MEMORY", "DOCTOR"]).is_empty());
        assert!(keys(&["SCAN", "0", "MATCH", "k*"]).is_empty());
        assert!(keys(&["KEYS", "*"]).is_empty());
    }

    #[test]
    fn first_key_routes_a_request() {
        let mget = lookup(b"mget").unwrap();
        assert_eq!(mget.first_key_of(&["MGET", "k1", "k2"]), Some(&b"k1"[..]));
        let info = lookup(b"info").unwrap();
        assert_eq!(info.first_key_of(&["INFO", "replication"]), None);
    }

    #[test]
    fn flags_are_typed_and_only_redis_ones_are_reported() {
        let set = lookup(b"set").unwrap();
        assert!(set.is(Flags::WRITE) && !set.is(Flags::READONLY));
        let import = lookup(b"kc.import").unwrap();
        assert!(import.is(Flags::BUS) && import.is(Flags::WRITE));
        assert_eq!(import.flags.reported_names().collect::<Vec<_>>(), ["write"]);
        let auth = lookup(b"auth").unwrap();
        assert!(auth.is(Flags::NO_AUTH) && !auth.is(Flags::ON_BUS));
        assert_eq!(auth.flags.reported_names().collect::<Vec<_>>(), ["fast"]);
        let getdel = lookup(b"getdel").unwrap();
        assert_eq!(
            getdel.flags.reported_names().collect::<Vec<_>>(),
            ["write", "fast"]
        );
        let incr = lookup(b"incr").unwrap();
        assert_eq!(
            incr.flags.reported_names().collect::<Vec<_>>(),
            ["write", "denyoom", "fast"]
        );
        // Only AUTH, HELLO, QUIT and RESET run before authentication, and
        // on the bus only the two steps of proving the cluster secret.
        let before_auth: Vec<_> = COMMANDS
            .iter()
            .filter(|c| c.is(Flags::NO_AUTH))
            .map(|c| c.name)
            .collect();
        assert_eq!(
            before_auth,
            ["auth", "quit", "hello", "reset", "kc.hello", "kc.auth"]
        );
    }
}
