//! What `COMMAND DOCS` and `COMMAND INFO` say about each command beyond its
//! row in the table: a one-line summary, the Redis version that introduced
//! it, its group, its time complexity, and its ACL categories.
//!
//! The summaries are Keycafe's own words and describe what a Keycafe node
//! does. `since`, `group`, the complexity and the categories are Redis's
//! facts for the commands Redis has (clients and tools such as redis-cli
//! read them to group and describe commands); Keycafe's own commands
//! (`DELETE`, the `KC.*` bus commands) have no `since`, and `COMMAND DOCS`
//! leaves it out for them. The categories follow the flags of Keycafe's
//! table where the two differ (APPEND is not flagged `fast` here; OBJECT and
//! MEMORY read keys). Redis's docs also carry argument lists and
//! history; Keycafe's do not (redis-cli then shows a command's name without
//! argument hints).

/// One command's documentation, for `COMMAND DOCS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    /// The command's name (`get`) or a subcommand's (`slowlog|get`).
    pub name: &'static str,
    pub summary: &'static str,
    /// The Redis version that introduced the command; empty for Keycafe's
    /// own commands.
    pub since: &'static str,
    /// Redis's group: `string`, `bitmap`, `generic`, `connection`,
    /// `server`, `transactions`, `cluster`.
    pub group: &'static str,
    /// Time complexity; empty where not stated.
    pub complexity: &'static str,
    /// ACL categories, space-separated (`@read @string @fast`).
    pub categories: &'static str,
}

impl Doc {
    /// The ACL categories, each with its `@`.
    pub fn categories(&self) -> impl Iterator<Item = &'static str> + Clone {
        self.categories.split_ascii_whitespace()
    }
}

macro_rules! docs {
    ($( $name:literal $since:literal $group:literal $complexity:literal $categories:literal $summary:literal ;)*) => {
        &[$( Doc {
            name: $name, since: $since, group: $group, complexity: $complexity,
            categories: $categories, summary: $summary,
        }, )*]
    };
}

/// The documentation of every command and subcommand of the table.
pub static DOCS: &[Doc] = docs! {
    // Strings.
    "get" "1.0.0" "string" "O(1)" "@read @string @fast"
        "Returns the string value of a key.";
    "set" "1.0.0" "string" "O(1)" "@write @string @slow"
        "Sets the string value of a key, with an optional expiry and condition.";
    "setnx" "1.0.0" "string" "O(1)" "@write @string @fast"
        "Sets a key's value only if the key does not exist.";
    "setex" "2.0.0" "string" "O(1)" "@write @string @slow"
        "Sets a key's value and its time to live in seconds.";
    "psetex" "2.6.0" "string" "O(1)" "@write @string @slow"
        "Sets a key's value and its time to live in milliseconds.";
    "getdel" "6.2.0" "string" "O(1)" "@write @string @fast"
        "Returns a key's value and deletes the key.";
    "getex" "6.2.0" "string" "O(1)" "@write @string @fast"
        "Returns a key's value and optionally changes its expiry.";
    "mget" "1.0.0" "string" "O(N) where N is the number of keys" "@read @string @fast"
        "Returns the values of several keys.";
    "mset" "1.0.1" "string" "O(N) where N is the number of keys" "@write @string @slow"
        "Sets several keys to several values.";
    "msetnx" "1.0.1" "string" "O(N) where N is the number of keys" "@write @string @slow"
        "Sets several keys to several values, only if none of them exists.";
    "incr" "1.0.0" "string" "O(1)" "@write @string @fast"
        "Adds one to the integer value of a key.";
    "decr" "1.0.0" "string" "O(1)" "@write @string @fast"
        "Subtracts one from the integer value of a key.";
    "incrby" "1.0.0" "string" "O(1)" "@write @string @fast"
        "Adds a number to the integer value of a key.";
    "decrby" "1.0.0" "string" "O(1)" "@write @string @fast"
        "Subtracts a number from the integer value of a key.";
    "append" "2.0.0" "string" "O(1) amortized" "@write @string @slow"
        "Appends a string to a key's value.";
    "strlen" "2.2.0" "string" "O(1)" "@read @string @fast"
        "Returns the length of a key's value.";
    // Strings: ranges, floats, bits and LCS.
    "getset" "1.0.0" "string" "O(1)" "@write @string @fast"
        "Sets a key's value and returns the old one.";
    "getrange" "2.4.0" "string" "O(N) where N is the length of the returned string" "@read @string @slow"
        "Returns a range of bytes of a key's value.";
    "substr" "1.0.0" "string" "O(N) where N is the length of the returned string" "@read @string @slow"
        "Returns a range of bytes of a key's value (the old name of GETRANGE).";
    "setrange" "2.2.0" "string" "O(1) plus copying the new bytes" "@write @string @slow"
        "Overwrites part of a key's value from an offset on.";
    "incrbyfloat" "2.6.0" "string" "O(1)" "@write @string @fast"
        "Adds a floating-point number to the value of a key.";
    "setbit" "2.2.0" "bitmap" "O(1)" "@write @bitmap @slow"
        "Sets or clears one bit of a key's value.";
    "getbit" "2.2.0" "bitmap" "O(1)" "@read @bitmap @fast"
        "Returns one bit of a key's value.";
    "bitcount" "2.6.0" "bitmap" "O(N)" "@read @bitmap @slow"
        "Counts the set bits of a key's value, or of a range of it.";
    "bitpos" "2.8.7" "bitmap" "O(N)" "@read @bitmap @slow"
        "Finds the first set or clear bit of a key's value.";
    "bitop" "2.6.0" "bitmap" "O(N)" "@write @bitmap @slow"
        "Stores the bitwise AND, OR, XOR or NOT of values in a key.";
    "lcs" "7.0.0" "string" "O(N*M) where N and M are the lengths of the two values" "@read @string @slow"
        "Finds the longest common subsequence of two keys' values.";
    // Keys and expiry.
    "del" "1.0.0" "generic" "O(N) where N is the number of keys" "@keyspace @write @slow"
        "Deletes keys.";
    "delete" "" "generic" "O(N) where N is the number of keys" "@keyspace @write @slow"
        "Deletes keys (Keycafe's first name for DEL).";
    "unlink" "4.0.0" "generic" "O(1) for each key" "@keyspace @write @fast"
        "Deletes keys (as DEL does in Keycafe).";
    "exists" "1.0.0" "generic" "O(N) where N is the number of keys" "@keyspace @read @fast"
        "Counts how many of the given keys exist.";
    "expire" "1.0.0" "generic" "O(1)" "@keyspace @write @fast"
        "Sets a key's time to live in seconds.";
    "pexpire" "2.6.0" "generic" "O(1)" "@keyspace @write @fast"
        "Sets a key's time to live in milliseconds.";
    "expireat" "1.2.0" "generic" "O(1)" "@keyspace @write @fast"
        "Sets a key's expiry as a Unix time in seconds.";
    "pexpireat" "2.6.0" "generic" "O(1)" "@keyspace @write @fast"
        "Sets a key's expiry as a Unix time in milliseconds.";
    "ttl" "1.0.0" "generic" "O(1)" "@keyspace @read @fast"
        "Returns a key's time to live in seconds.";
    "pttl" "2.6.0" "generic" "O(1)" "@keyspace @read @fast"
        "Returns a key's time to live in milliseconds.";
    "persist" "2.2.0" "generic" "O(1)" "@keyspace @write @fast"
        "Removes a key's expiry.";
    "object" "2.2.3" "generic" "Depends on subcommand." "@keyspace @read @slow"
        "Reports how a key is held: encoding, access frequency, idle time.";
    "dbsize" "1.0.0" "server" "O(1)" "@keyspace @read @fast"
        "Returns the number of keys the node holds.";
    "flushall" "1.0.0" "server" "O(N) where N is the number of keys" "@keyspace @write @slow @dangerous"
        "Deletes every key of the node.";
    "flushdb" "1.0.0" "server" "O(N) where N is the number of keys" "@keyspace @write @slow @dangerous"
        "Deletes every key of the node (it has one database).";
    // Keyspace: walking it, moving values between keys, introspection.
    "scan" "2.8.0" "generic" "O(1) for every call, O(N) for a complete iteration" "@keyspace @read @slow"
        "Walks the keys a few at a time with a cursor.";
    "keys" "1.0.0" "generic" "O(N) where N is the number of keys" "@keyspace @read @slow @dangerous"
        "Returns every key that matches a pattern.";
    "randomkey" "1.0.0" "generic" "O(1)" "@keyspace @read @slow"
        "Returns a key chosen at random.";
    "type" "1.0.0" "generic" "O(1)" "@keyspace @read @fast"
        "Returns the type of a key's value.";
    "touch" "3.2.1" "generic" "O(N) where N is the number of keys" "@keyspace @read @fast"
        "Counts the given keys that exist, marking them as just used.";
    "rename" "1.0.0" "generic" "O(1)" "@keyspace @write @slow"
        "Renames a key, replacing any key of the new name.";
    "renamenx" "1.0.0" "generic" "O(1)" "@keyspace @write @fast"
        "Renames a key only if the new name is free.";
    "copy" "6.2.0" "generic" "O(1) for string values" "@keyspace @write @slow"
        "Copies a key's value to another key.";
    "expiretime" "7.0.0" "generic" "O(1)" "@keyspace @read @fast"
        "Returns a key's expiry as a Unix time in seconds.";
    "pexpiretime" "7.0.0" "generic" "O(1)" "@keyspace @read @fast"
        "Returns a key's expiry as a Unix time in milliseconds.";
    "time" "2.6.0" "server" "O(1)" "@fast"
        "Returns the node's clock.";
    "memory" "4.0.0" "server" "Depends on subcommand." "@read @slow"
        "Reports on memory: the bytes a key takes, and more.";
    // Connection and server.
    "ping" "1.0.0" "connection" "O(1)" "@fast @connection"
        "Answers PONG, or echoes its argument.";
    "echo" "1.0.0" "connection" "O(1)" "@fast @connection"
        "Returns its argument.";
    "auth" "1.0.0" "connection" "O(1)" "@fast @connection"
        "Authenticates the connection.";
    "quit" "1.0.0" "connection" "O(1)" "@fast @connection"
        "Closes the connection.";
    "hello" "6.0.0" "connection" "O(1)" "@fast @connection"
        "Chooses RESP2 or RESP3 and describes the node.";
    "select" "1.0.0" "connection" "O(1)" "@fast @connection"
        "Selects a database (Keycafe has only database 0).";
    "client" "2.4.0" "connection" "Depends on subcommand." "@slow"
        "Commands about client connections.";
    "command" "2.8.13" "server" "O(N) where N is the number of commands" "@slow @connection"
        "Describes the commands the node serves.";
    "config" "2.0.0" "server" "Depends on subcommand." "@slow"
        "Reads and changes settings.";
    "info" "1.0.0" "server" "O(1)" "@slow @dangerous"
        "Reports the node's state and statistics.";
    // Persistence.
    "save" "1.0.0" "server" "O(N) where N is the number of keys" "@admin @slow @dangerous"
        "Writes a snapshot of every key to the data directory, and answers when it is on disk.";
    "bgsave" "1.0.0" "server" "O(1)" "@admin @slow @dangerous"
        "Starts writing a snapshot in the background.";
    "bgrewriteaof" "1.0.0" "server" "O(1)" "@admin @slow @dangerous"
        "Starts compacting the append-only file in the background.";
    "lastsave" "1.0.0" "server" "O(1)" "@fast @dangerous"
        "Returns the Unix time of the last snapshot written.";
    // Connections: resetting one, watching every command.
    "reset" "6.2.0" "connection" "O(1)" "@fast @connection"
        "Makes the connection as new: no transaction, RESP2, no name, not authenticated if a password is set.";
    "monitor" "1.0.0" "server" "O(1)" "@admin @slow @dangerous"
        "Streams every command the node runs to this connection.";
    // Transactions.
    "multi" "1.2.0" "transactions" "O(1)" "@fast @transaction"
        "Starts a transaction.";
    "exec" "1.2.0" "transactions" "Depends on commands in the transaction" "@slow @transaction"
        "Runs the commands queued since MULTI, as one unit.";
    "discard" "2.0.0" "transactions" "O(N) where N is the number of queued commands" "@fast @transaction"
        "Drops the commands queued since MULTI.";
    "watch" "2.2.0" "transactions" "O(1) for every key" "@fast @transaction"
        "Makes the next EXEC run only if these keys do not change meanwhile.";
    "unwatch" "2.2.0" "transactions" "O(1)" "@fast @transaction"
        "Forgets every watched key.";
    // Replication.
    "wait" "3.0.0" "generic" "O(1)" "@slow @connection"
        "Waits until replicas have this connection's writes.";
    "role" "2.8.12" "server" "O(1)" "@admin @fast @dangerous"
        "Reports whether the node is a primary or a replica.";
    // Cluster.
    "cluster" "3.0.0" "cluster" "Depends on subcommand." "@slow"
        "Commands about the cluster: slots, nodes, failover.";
    "asking" "3.0.0" "cluster" "O(1)" "@fast @connection"
        "Lets the next command reach a slot being imported (after -ASK).";
    "readonly" "3.0.0" "cluster" "O(1)" "@fast @connection"
        "Lets this connection read from a replica.";
    "readwrite" "3.0.0" "cluster" "O(1)" "@fast @connection"
        "Stops this connection reading from a replica.";
    // Introspection: the slow log and the latency monitor.
    "slowlog" "2.2.12" "server" "Depends on subcommand." "@slow"
        "Commands about the slow log.";
    "latency" "2.8.13" "server" "Depends on subcommand." "@slow"
        "Commands about the latency monitor.";
    // Cluster bus only: never served on the client port.
    "kc.hello" "" "cluster" "O(1)" "@admin @fast @dangerous"
        "Cluster bus: opens a node-to-node link with a challenge.";
    "kc.auth" "" "cluster" "O(1)" "@admin @fast @dangerous"
        "Cluster bus: proves that the peer holds the cluster secret.";
    "kc.ping" "" "cluster" "O(1)" "@admin @fast @dangerous"
        "Cluster bus: gossip between nodes.";
    "kc.config" "" "cluster" "O(1)" "@admin @fast @dangerous"
        "Cluster bus: returns the node's cluster configuration.";
    "kc.import" "" "cluster" "O(N) where N is the number of keys" "@admin @write @slow @dangerous"
        "Cluster bus: takes in keys migrated from another node.";
    "kc.psync" "" "cluster" "" "@admin @slow @dangerous"
        "Cluster bus: turns the link into a replication stream.";
    "kc.failover.pause" "" "cluster" "O(1)" "@admin @slow @dangerous"
        "Cluster bus: pauses writes for a manual failover.";
    "kc.failover.resume" "" "cluster" "O(1)" "@admin @slow @dangerous"
        "Cluster bus: resumes writes after a manual failover.";
    // Subcommands: COMMAND.
    "command|count" "2.8.13" "server" "O(1)" "@slow @connection"
        "Returns the number of commands.";
    "command|docs" "7.0.0" "server" "O(N) where N is the number of commands to look up" "@slow @connection"
        "Returns the documentation of commands.";
    "command|getkeys" "2.8.13" "server" "O(N) where N is the number of arguments to the command" "@slow @connection"
        "Returns the keys of a full command.";
    "command|getkeysandflags" "7.0.0" "server" "O(N) where N is the number of arguments to the command" "@slow @connection"
        "Returns the keys of a full command and how it uses each.";
    "command|help" "5.0.0" "server" "O(1)" "@slow @connection"
        "Describes the subcommands.";
    "command|info" "2.8.13" "server" "O(N) where N is the number of commands to look up" "@slow @connection"
        "Describes commands.";
    "command|list" "7.0.0" "server" "O(N) where N is the number of commands" "@slow @connection"
        "Returns the names of commands, optionally filtered.";
    // Subcommands: CONFIG.
    "config|get" "2.0.0" "server" "O(N) when N is the number of settings" "@admin @slow @dangerous"
        "Returns the settings that match patterns, and their values.";
    "config|help" "5.0.0" "server" "O(1)" "@slow"
        "Describes the subcommands.";
    "config|resetstat" "2.0.0" "server" "O(1)" "@admin @slow @dangerous"
        "Resets the statistics INFO reports.";
    "config|set" "2.0.0" "server" "O(N) when N is the number of settings" "@admin @slow @dangerous"
        "Changes settings at run time, all or none.";
    // Subcommands: SLOWLOG.
    "slowlog|get" "2.2.12" "server" "O(N) where N is the number of entries returned" "@admin @slow @dangerous"
        "Returns the newest entries of the slow log.";
    "slowlog|help" "6.2.0" "server" "O(1)" "@slow"
        "Describes the subcommands.";
    "slowlog|len" "2.2.12" "server" "O(1)" "@admin @slow @dangerous"
        "Returns the number of entries in the slow log.";
    "slowlog|reset" "2.2.12" "server" "O(N) where N is the number of entries in the slow log" "@admin @slow @dangerous"
        "Empties the slow log.";
    // Subcommands: LATENCY.
    "latency|doctor" "2.8.13" "server" "O(1)" "@admin @slow @dangerous"
        "Reports on the latency events recorded, in words.";
    "latency|help" "2.8.13" "server" "O(1)" "@slow"
        "Describes the subcommands.";
    "latency|history" "2.8.13" "server" "O(1)" "@admin @slow @dangerous"
        "Returns the recorded samples of one latency event.";
    "latency|latest" "2.8.13" "server" "O(1)" "@admin @slow @dangerous"
        "Returns the latest and the worst sample of every latency event.";
    "latency|reset" "2.8.13" "server" "O(1)" "@admin @slow @dangerous"
        "Forgets the samples of some latency events, or of all.";
};

/// The documentation of a command (`get`) or subcommand (`slowlog|get`),
/// by its lower-case name.
pub fn doc(name: &str) -> Option<&'static Doc> {
    DOCS.iter().find(|doc| doc.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{COMMANDS, SUBCOMMANDS};

    #[test]
    fn every_command_and_subcommand_has_one_doc() {
        for info in COMMANDS.iter().chain(SUBCOMMANDS) {
            let found = DOCS.iter().filter(|doc| doc.name == info.name).count();
            assert_eq!(found, 1, "{}", info.name);
        }
        for doc in DOCS {
            let known = COMMANDS
                .iter()
                .chain(SUBCOMMANDS)
                .any(|c| c.name == doc.name);
            assert!(known, "{} is documented but not in the table", doc.name);
        }
    }

    #[test]
    fn categories_agree_with_the_flags() {
        use crate::command::Flags;
        for info in COMMANDS.iter().chain(SUBCOMMANDS) {
            let doc = doc(info.name).unwrap();
            let has = |category: &str| doc.categories().any(|c| c == category);
            assert_eq!(has("@write"), info.is(Flags::WRITE), "{}", info.name);
            assert_eq!(has("@read"), info.is(Flags::READONLY), "{}", info.name);
            assert_eq!(has("@fast"), info.is(Flags::FAST), "{}", info.name);
            assert_ne!(has("@fast"), has("@slow"), "{}", info.name);
            assert!(
                doc.categories().all(|c| c.starts_with('@')),
                "{}",
                info.name
            );
        }
    }
}
