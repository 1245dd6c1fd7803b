//! COMMAND and its subcommands: what the node says about the commands it
//! serves, all read from `keycafe_core::command`'s table (arity, flags, key
//! positions, subcommands) and its docs (summary, since, group, complexity,
//! ACL categories).
//!
//! - `COMMAND`, `COMMAND INFO [name ...]`: Redis 7's ten-element
//!   description of each command, its subcommands included.
//! - `COMMAND COUNT`: the number of commands (subcommands not counted).
//! - `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]`:
//!   names, subcommands included as `container|sub`; there are no modules,
//!   so a module filter matches nothing.
//! - `COMMAND DOCS [name ...]`: a map from each name to its documentation.
//! - `COMMAND GETKEYS` / `GETKEYSANDFLAGS command args...`: the keys of a
//!   request, by the table's key positions, and how the command uses each
//!   one, in Redis's words (`RO access`, `OW update`, `RM delete`, ...).

use keycafe_core::command::{self, COMMANDS, CommandInfo, Flags, SUBCOMMANDS};
use keycafe_core::glob::Glob;
use keycafe_core::{Args, Reply};

use super::{ArgCursor, CmdError, CmdResult, Ctx};

/// `COMMAND [subcommand ...]`. The subcommand and its number of arguments
/// were checked by `execute` against the table.
pub fn command(_ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if args.len() == 1 {
        reply.array(COMMANDS.len());
        COMMANDS.iter().for_each(|info| command_info(info, reply));
        return Ok(());
    }
    let mut cursor = ArgCursor::new(args);
    match cursor.next_keyword()?.as_bytes() {
        b"COUNT" => reply.integer(COMMANDS.len() as i64),
        b"INFO" => {
            if cursor.remaining() == 0 {
                reply.array(COMMANDS.len());
                COMMANDS.iter().for_each(|info| command_info(info, reply));
                return Ok(());
            }
            reply.array(cursor.remaining());
            while cursor.remaining() > 0 {
                match find(cursor.next_bytes()?) {
                    Some(info) => command_info(info, reply),
                    None => reply.null(),
                }
            }
        }
        b"DOCS" => docs(&mut cursor, reply)?,
        b"LIST" => list(&mut cursor, reply)?,
        b"GETKEYS" => getkeys(args, false, reply)?,
        b"GETKEYSANDFLAGS" => getkeys(args, true, reply)?,
        b"HELP" => super::help(reply, "COMMAND", HELP),
        _ => return Err(super::server::unknown_subcommand(args, "COMMAND")),
    }
    Ok(())
}

const HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all commands of this node.",
    "COUNT",
    "    Return the number of commands of this node.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return the names of the commands of this node, subcommands included,",
    "    optionally only those of a module (there are none), of an ACL",
    "    category, or matching a glob-style pattern.",
    "INFO [<command-name> ...]",
    "    Return details about the named commands, or about all of them.",
    "DOCS [<command-name> ...]",
    "    Return documentation about the named commands, or about all of them.",
    "GETKEYS <full-command>",
    "    Return the keys of a full command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys of a full command and how the command uses each.",
    "HELP",
    "    Print this help.",
];

/// A command by name (`get`) or a subcommand by its full name
/// (`config|get`), in any letter case.
fn find(name: &[u8]) -> Option<&'static CommandInfo> {
    if let Some(info) = command::lookup(name) {
        return Some(info);
    }
    let bar = name.iter().position(|&b| b == b'|')?;
    let container = command::position(&name[..bar])?;
    let at = command::subcommand_position(container, &name[bar + 1..])?;
    Some(&SUBCOMMANDS[at])
}

/// The subcommands of a command, from the table.
fn subcommands(info: &CommandInfo) -> &'static [CommandInfo] {
    match command::position(info.name.as_bytes()) {
        Some(at) => &SUBCOMMANDS[command::subcommands_of(at)],
        None => &[],
    }
}

/// One command's description in Redis 7's COMMAND INFO shape: flags, ACL
/// categories, tips, key specifications and subcommands are sets in RESP3,
/// as Redis sends them. Keycafe has no tips or key specifications.
fn command_info(info: &CommandInfo, reply: &mut Reply<'_>) {
    reply.array(10);
    reply.bulk(info.name.as_bytes());
    reply.integer(i64::from(info.arity));
    reply.set(info.flags.reported_names().count());
    info.flags
        .reported_names()
        .for_each(|flag| reply.simple(flag.as_bytes()));
    reply.integer(i64::from(info.first_key));
    reply.integer(i64::from(info.last_key));
    reply.integer(i64::from(info.step));
    // ACL categories: Keycafe has no ACLs, and shows none here (the golden
    // transcripts of every command family expect the empty set); COMMAND
    // LIST FILTERBY ACLCAT still filters by the categories of the docs.
    reply.set(0);
    reply.set(0); // tips
    reply.set(0); // key specifications
    let subcommands = subcommands(info);
    reply.set(subcommands.len());
    subcommands.iter().for_each(|sub| command_info(sub, reply));
}

/// `COMMAND DOCS [name ...]`: a map from each known name to its
/// documentation; unknown names are left out, as Redis leaves them out.
fn docs(cursor: &mut ArgCursor<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut found: Vec<&CommandInfo> = Vec::new();
    if cursor.remaining() == 0 {
        found.extend(COMMANDS);
    }
    while cursor.remaining() > 0 {
        found.extend(find(cursor.next_bytes()?));
    }
    reply.map(found.len());
    for info in found {
        reply.bulk(info.name.as_bytes());
        command_doc(info, reply);
    }
    Ok(())
}

/// One command's documentation map: summary, since (Redis's commands
/// only), group, complexity (where known) and its subcommands'.
fn command_doc(info: &CommandInfo, reply: &mut Reply<'_>) {
    let Some(doc) = command::doc(info.name) else {
        reply.map(0);
        return;
    };
    let fields = [
        ("summary", doc.summary),
        ("since", doc.since),
        ("group", doc.group),
        ("complexity", doc.complexity),
    ];
    let present = fields.iter().filter(|(_, value)| !value.is_empty());
    let subcommands = subcommands(info);
    reply.map(present.clone().count() + usize::from(!subcommands.is_empty()));
    for (field, value) in present {
        reply.bulk(field.as_bytes());
        reply.bulk(value.as_bytes());
    }
    if !subcommands.is_empty() {
        reply.bulk(b"subcommands");
        reply.map(subcommands.len());
        for sub in subcommands {
            reply.bulk(sub.name.as_bytes());
            command_doc(sub, reply);
        }
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]`.
fn list(cursor: &mut ArgCursor<'_>, reply: &mut Reply<'_>) -> CmdResult {
    enum Filter {
        All,
        Module,
        Category(Vec<u8>),
        Pattern(Glob),
    }
    let filter = match cursor.remaining() {
        0 => Filter::All,
        3 => {
            if cursor.next_keyword()?.as_bytes() != b"FILTERBY" {
                return Err(CmdError::Syntax);
            }
            let kind = cursor.next_keyword()?;
            let value = cursor.next_bytes()?;
            match kind.as_bytes() {
                b"MODULE" => Filter::Module,
                b"ACLCAT" => Filter::Category(value.to_ascii_lowercase()),
                b"PATTERN" => Filter::Pattern(Glob::new(value)),
                _ => return Err(CmdError::Syntax),
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    let names = COMMANDS.iter().flat_map(|info| {
        std::iter::once(info.name).chain(subcommands(info).iter().map(|sub| sub.name))
    });
    let names: Vec<&str> = names
        .filter(|name| match &filter {
            Filter::All => true,
            Filter::Module => false,
            Filter::Category(category) => command::doc(name).is_some_and(|doc| {
                doc.categories()
                    .any(|c| c.as_bytes()[1..].eq_ignore_ascii_case(category))
            }),
            Filter::Pattern(glob) => glob.matches_nocase(name.as_bytes()),
        })
        .collect();
    reply.array(names.len());
    names.iter().for_each(|name| reply.bulk(name.as_bytes()));
    Ok(())
}

/// `COMMAND GETKEYS` and `COMMAND GETKEYSANDFLAGS`: the keys of the
/// request after the subcommand, and with flags, how it uses each.
fn getkeys(args: Args<'_>, with_flags: bool, reply: &mut Reply<'_>) -> CmdResult {
    let request = args.skip(2);
    let name = request.get(0).unwrap_or_default();
    let Some(info) = command::lookup(name) else {
        return Err(CmdError::Other("ERR Invalid command specified".into()));
    };
    if !info.arity_ok(request.len()) {
        return Err(CmdError::Other(
            "ERR Invalid number of arguments specified for command".into(),
        ));
    }
    let positions: Vec<usize> = info.key_positions(request.len()).collect();
    if positions.is_empty() {
        return Err(CmdError::Other(
            "ERR The command has no key arguments".into(),
        ));
    }
    reply.array(positions.len());
    for (nth, &at) in positions.iter().enumerate() {
        let key = request.get(at).unwrap_or_default();
        if !with_flags {
            reply.bulk(key);
            continue;
        }
        reply.array(2);
        reply.bulk(key);
        let flags = key_flags(info, nth);
        reply.set(flags.len());
        flags.iter().for_each(|flag| reply.simple(flag.as_bytes()));
    }
    Ok(())
}

/// How a command uses its `nth` key, in the words of Redis's key
/// specifications: `RO`/`RW`/`OW`/`RM` (reads, reads and writes,
/// overwrites, removes), then what it does with the value (`access`,
/// `update`, `insert`, `delete`).
fn key_flags(info: &CommandInfo, nth: usize) -> &'static [&'static str] {
    const RO: &[&str] = &["RO"];
    const RO_ACCESS: &[&str] = &["RO", "access"];
    const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];
    const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];
    const RW_UPDATE: &[&str] = &["RW", "update"];
    const RW_INSERT: &[&str] = &["RW", "insert"];
    const OW_UPDATE: &[&str] = &["OW", "update"];
    const OW_INSERT: &[&str] = &["OW", "insert"];
    const RM_DELETE: &[&str] = &["RM", "delete"];
    match (info.name, nth) {
        ("set" | "setex" | "psetex" | "mset", _) => OW_UPDATE,
        ("setnx" | "msetnx", _) => OW_INSERT,
        ("getdel", _) => RW_ACCESS_DELETE,
        ("append", _) => RW_INSERT,
        ("setrange" | "expire" | "pexpire" | "expireat" | "pexpireat" | "persist", _) => RW_UPDATE,
        ("del" | "delete" | "unlink", _) => RM_DELETE,
        ("strlen" | "exists" | "type" | "touch" | "object" | "memory" | "watch", _) => RO,
        ("bitop", 0) | ("copy", 1) | ("rename", 1) => OW_UPDATE,
        ("bitop" | "copy", _) => RO_ACCESS,
        ("rename" | "renamenx", 0) => RW_ACCESS_DELETE,
        ("renamenx", _) => OW_INSERT,
        _ if info.is(Flags::WRITE) => RW_ACCESS_UPDATE,
        _ => RO_ACCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_takes_commands_and_full_subcommand_names() {
        assert_eq!(find(b"GET").map(|c| c.name), Some("get"));
        assert_eq!(find(b"config|GET").map(|c| c.name), Some("config|get"));
        assert_eq!(find(b"slowlog|len").map(|c| c.name), Some("slowlog|len"));
        assert!(find(b"config|nosuch").is_none());
        assert!(find(b"get|x").is_none());
        assert!(find(b"|").is_none());
    }

    #[test]
    fn key_flags_say_how_each_key_is_used() {
        let flags = |name: &str, nth| key_flags(command::lookup(name.as_bytes()).unwrap(), nth);
        assert_eq!(flags("get", 0), ["RO", "access"]);
        assert_eq!(flags("set", 0), ["OW", "update"]);
        assert_eq!(flags("incr", 0), ["RW", "access", "update"]);
        assert_eq!(flags("del", 1), ["RM", "delete"]);
        assert_eq!(flags("rename", 0), ["RW", "access", "delete"]);
        assert_eq!(flags("rename", 1), ["OW", "update"]);
        assert_eq!(flags("renamenx", 1), ["OW", "insert"]);
        assert_eq!(flags("copy", 0), ["RO", "access"]);
        assert_eq!(flags("bitop", 0), ["OW", "update"]);
        assert_eq!(flags("bitop", 1), ["RO", "access"]);
    }
}
