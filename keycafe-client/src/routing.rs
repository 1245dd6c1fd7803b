//! Where a request goes and what a node's refusal means for it.
//!
//! [`Request`] pairs an encoded request with its slot, computed once from
//! the command's key, so that retries and redirects resend the same bytes,
//! and with how long the node may hold its reply back on purpose (a
//! `WAIT`'s timeout), which the response timeout must allow for.
//! [`Outcome::of`] sorts a reply into "done" or one of the cluster's ways of
//! saying "not here" or "not now", which [`crate::cluster`] acts on.
//!
//! The key of a command given to the raw `command` call is found by
//! keycafe-core's command table, the one the node runs commands from, so
//! the two agree on every command: a command with keys goes to the node of
//! its first key, a keyless one to any node. A command the table does not
//! know goes to any node too; every node answers it with the same "unknown
//! command" error. For a multi-key command the first key decides, and a node
//! answers `CROSSSLOT` if the others live elsewhere (the typed multi-key
//! methods split by slot so that this never happens to them).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keycafe_core::{Frame, Protocol, SLOT_COUNT, Slot, command, key_slot};

use crate::connection::Hold;
use crate::{Error, Result};

/// One encoded request, the slot it is routed by (`None`: any node), and
/// how long the node may hold its reply back.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) bytes: Bytes,
    pub(crate) slot: Option<Slot>,
    pub(crate) hold: Hold,
}

impl Request {
    /// Encodes `args` (command name first), routed by the command's key.
    pub(crate) fn new<A: AsRef<[u8]>>(args: &[A]) -> Request {
        Request::for_slot(args, routing_key(args).map(key_slot))
    }

    /// Encodes `args`, routed to the node serving `slot` whatever the
    /// command's own key (if any) is.
    pub(crate) fn for_slot<A: AsRef<[u8]>>(args: &[A], slot: Option<Slot>) -> Request {
        let mut out =
            BytesMut::with_capacity(16 + args.iter().map(|a| 5 + a.as_ref().len()).sum::<usize>());
        Protocol::Native.encode_request(args, &mut out);
        Request {
            bytes: out.freeze(),
            slot,
            hold: hold_of(args),
        }
    }
}

/// How long the node may hold the reply to `args` back: `WAIT numreplicas
/// timeout-ms` for its timeout, with `0` meaning for as long as it takes.
fn hold_of<A: AsRef<[u8]>>(args: &[A]) -> Hold {
    let [name, _, timeout] = args else {
        return Hold::None;
    };
    if !name.as_ref().eq_ignore_ascii_case(b"WAIT") {
        return Hold::None;
    }
    // A timeout that does not parse gets an error reply, not a wait.
    match std::str::from_utf8(timeout.as_ref()).map(str::parse::<u64>) {
        Ok(Ok(0)) => Hold::Indefinitely,
        Ok(Ok(millis)) => Hold::For(Duration::from_millis(millis)),
        _ => Hold::None,
    }
}

/// The encoded `ASKING` request.
pub(crate) fn asking() -> Bytes {
    let mut out = BytesMut::new();
    Protocol::Native.encode_request(&[b"ASKING"], &mut out);
    out.freeze()
}

/// The argument a command is routed by: its first key, by the command
/// table's key positions. `None` (any node) for a command without keys, and
/// for one the table does not know, which every node refuses alike.
pub(crate) fn routing_key<A: AsRef<[u8]>>(args: &[A]) -> Option<&[u8]> {
    command::lookup(args.first()?.as_ref())?.first_key_of(args)
}

/// Commands that change the state of the connection they run on. On a
/// connection shared by many callers they would leak into everyone else's
/// requests, so the raw `command` call refuses them.
const CONNECTION_STATE: &[&str] = &[
    "ASKING",
    "AUTH",
    "DISCARD",
    "EXEC",
    "HELLO",
    "MONITOR",
    "MULTI",
    "PSUBSCRIBE",
    "QUIT",
    "RESET",
    "SELECT",
    "SSUBSCRIBE",
    "SUBSCRIBE",
    "UNWATCH",
    "WATCH",
];

/// Refuses what cannot be sent on a shared connection: an empty command,
/// or one that would change the connection's state.
pub(crate) fn check_command<A: AsRef<[u8]>>(args: &[A]) -> Result<()> {
    let Some(name) = args.first() else {
        return Err(Error::InvalidRequest("a command needs a name".into()));
    };
    let name = name.as_ref();
    if let Some(refused) = CONNECTION_STATE
        .iter()
        .find(|c| name.eq_ignore_ascii_case(c.as_bytes()))
    {
        return Err(Error::InvalidRequest(format!(
            "{refused} would change the state of a connection shared by every clone of this handle; \
             set credentials in ClientConfig instead of AUTH"
        )));
    }
    Ok(())
}

/// What a reply means for the request that got it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A final answer (including error replies that no retry can fix).
    Done,
    /// `MOVED slot addr`: the slot lives at `addr` now.
    Moved { slot: Slot, addr: String },
    /// `ASK slot addr`: this key is mid-migration; ask `addr` once.
    Ask { addr: String },
    /// `TRYAGAIN` or `LOADING`: the same node, a little later.
    TryAgain,
    /// `CLUSTERDOWN`: the node cannot serve the slot right now.
    ClusterDown,
}

impl Outcome {
    /// Classifies `reply` from the node at `from` (whose host fills in a
    /// redirect address that leaves it out, as `MOVED 1 :6380` does).
    pub(crate) fn of(reply: &Frame, from: &str) -> Outcome {
        let Frame::Error(text) = reply else {
            return Outcome::Done;
        };
        let mut words = text.split(|&b| b == b' ');
        let code = words.next().unwrap_or_default();
        match code {
            b"MOVED" | b"ASK" => {
                let slot = words
                    .next()
                    .and_then(|s| std::str::from_utf8(s).ok()?.parse::<Slot>().ok());
                let slot = slot.filter(|&slot| slot < SLOT_COUNT);
                let addr = words.next().and_then(|a| std::str::from_utf8(a).ok());
                let (Some(slot), Some(addr)) = (slot, addr) else {
                    // Not a redirect this client understands: let the caller see it.
                    return Outcome::Done;
                };
                let addr = if addr.starts_with(':') {
                    let host = from.rsplit_once(':').map_or(from, |(host, _)| host);
                    format!("{host}{addr}")
                } else {
                    addr.to_string()
                };
                if code == b"MOVED" {
                    Outcome::Moved { slot, addr }
                } else {
                    Outcome::Ask { addr }
                }
            }
            b"TRYAGAIN" | b"LOADING" => Outcome::TryAgain,
            b"CLUSTERDOWN" => Outcome::ClusterDown,
            _ => Outcome::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys() {
        assert_eq!(routing_key(&["GET", "k"]), Some(&b"k"[..]));
        assert_eq!(routing_key(&["set", "k", "v"]), Some(&b"k"[..]));
        assert_eq!(routing_key(&["MGET", "a", "b"]), Some(&b"a"[..]));
        assert_eq!(routing_key(&["ping"]), None);
        assert_eq!(routing_key(&["CLUSTER", "SLOTS"]), None);
        assert_eq!(routing_key(&["MSET", "a", "1", "b", "2"]), Some(&b"a"[..]));
        assert_eq!(routing_key(&["DEL", "a", "b"]), Some(&b"a"[..]));
        assert_eq!(routing_key(&["WAIT", "1", "0"]), None);
        assert_eq!(routing_key(&["DBSIZE"]), None);
        // OBJECT's key is its second argument.
        assert_eq!(routing_key(&["OBJECT", "ENCODING", "k"]), Some(&b"k"[..]));
        // Commands the node does not serve go to any node: each answers
        // "unknown command" alike.
        assert_eq!(routing_key(&["EVAL", "return 1", "1", "k"]), None);
        assert_eq!(routing_key(&["NOSUCHCOMMAND", "k"]), None);
        // Too few arguments: no key to route by; the node answers the arity error.
        assert_eq!(routing_key(&["GET"]), None);
        assert_eq!(routing_key::<&str>(&[]), None);
        assert_eq!(Request::new(&["GET", "foo"]).slot, Some(12182));
        assert_eq!(
            Request::for_slot(&["WAIT", "1", "0"], Some(7)).slot,
            Some(7)
        );
    }

    #[test]
    fn wait_holds_the_reply_for_its_timeout() {
        let hold = |args: &[&str]| Request::new(args).hold;
        assert_eq!(
            hold(&["WAIT", "1", "1500"]),
            Hold::For(Duration::from_millis(1500))
        );
        assert_eq!(hold(&["wait", "2", "0"]), Hold::Indefinitely);
        assert_eq!(hold(&["WAIT", "1", "-5"]), Hold::None);
        assert_eq!(hold(&["WAIT", "1"]), Hold::None);
        assert_eq!(hold(&["GET", "WAIT", "0"]), Hold::None);
    }

    #[test]
    fn outcomes() {
        let of = |text: &'static str| Outcome::of(&Frame::error(text), "10.0.0.1:9814");
        assert_eq!(
            of("MOVED 3999 10.0.0.2:9815"),
            Outcome::Moved {
                slot: 3999,
                addr: "10.0.0.2:9815".into()
            }
        );
        assert_eq!(
            of("MOVED 3999 :9815"),
            Outcome::Moved {
                slot: 3999,
                addr: "10.0.0.1:9815".into()
            }
        );
        assert_eq!(
            of("ASK 3999 10.0.0.3:9816"),
            Outcome::Ask {
                addr: "10.0.0.3:9816".into()
            }
        );
        assert_eq!(
            of("TRYAGAIN Multiple keys request during rehashing of slot"),
            Outcome::TryAgain
        );
        assert_eq!(of("LOADING loading the dataset"), Outcome::TryAgain);
        assert_eq!(of("CLUSTERDOWN The cluster is down"), Outcome::ClusterDown);
        assert_eq!(of("ERR wrong number of arguments"), Outcome::Done);
        assert_eq!(of("MOVED garbage"), Outcome::Done);
        assert_eq!(of("MOVED 99999 h:1"), Outcome::Done);
        assert_eq!(of("MOVED 16384 h:1"), Outcome::Done);
        assert_eq!(Outcome::of(&Frame::Integer(1), "h:1"), Outcome::Done);
    }
}
