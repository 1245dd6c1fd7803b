//! What the benchmark sends: the tests, their requests pre-encoded, and the
//! random keys patched into them.
//!
//! As in redis-benchmark, a key is written `key:__rand_int__`. Without `-r`
//! that is the key, literally; with `-r N` each request gets a random number
//! below N written over the 12-byte placeholder as 12 zero-padded digits
//! (`key:000000012345`). Because the placeholder and the digits have the same
//! length, a request is encoded once and a batch of `-P` copies is patched in
//! place: the hot loop never encodes, allocates or formats.
//!
//! All placeholders of one request get the same number, so multi-key tests
//! can keep their keys in one slot with a hash tag (`{key:…}:0`, `{key:…}:1`)
//! and work against a cluster.

use std::ops::Range;

use bytes::BytesMut;
use keycafe_core::Protocol;

/// What `-r` replaces; 12 bytes, like the 12 digits that replace it.
pub const PLACEHOLDER: &[u8; 12] = b"__rand_int__";

/// Keys per request in the multi-key tests (MSET, MGET).
const MULTI_KEYS: usize = 10;

/// The tests `-t` accepts.
pub const BUILTIN: &[&str] = &[
    "ping", "set", "get", "incr", "decr", "mset", "mget", "exists", "del",
];

/// One test: a name for the report and the request it repeats.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub args: Vec<Vec<u8>>,
}

impl Workload {
    /// A built-in test by name (case-insensitive), with `value` for writes.
    pub fn builtin(name: &str, value: &[u8]) -> Option<Workload> {
        let key = || b"key:__rand_int__".to_vec();
        let tagged = |i: usize| format!("{{key:__rand_int__}}:{i}").into_bytes();
        let mut args: Vec<Vec<u8>> = match name.to_ascii_lowercase().as_str() {
            "ping" => vec![b"PING".to_vec()],
            "set" => vec![b"SET".to_vec(), key(), value.to_vec()],
            "get" => vec![b"GET".to_vec(), key()],
            "incr" => vec![b"INCR".to_vec(), b"counter:__rand_int__".to_vec()],
            "decr" => vec![b"DECR".to_vec(), b"counter:__rand_int__".to_vec()],
            "exists" => vec![b"EXISTS".to_vec(), key()],
            "del" => vec![b"DEL".to_vec(), key()],
            "mset" => vec![b"MSET".to_vec()],
            "mget" => vec![b"MGET".to_vec()],
            _ => return None,
        };
        match args[0].as_slice() {
            b"MSET" => (0..MULTI_KEYS).for_each(|i| args.extend([tagged(i), value.to_vec()])),
            b"MGET" => args.extend((0..MULTI_KEYS).map(tagged)),
            _ => {}
        }
        let name = match args[0].as_slice() {
            b"MSET" | b"MGET" => format!("{} ({MULTI_KEYS} keys)", name.to_ascii_uppercase()),
            _ => name.to_ascii_uppercase(),
        };
        Some(Workload { name, args })
    }

    /// A test from the command line's trailing arguments.
    pub fn custom(args: Vec<String>) -> Workload {
        Workload {
            name: args.join(" "),
            args: args.into_iter().map(String::into_bytes).collect(),
        }
    }
}

/// One request, encoded once, with the offsets of its placeholders and of
/// its first key (for routing by slot).
#[derive(Debug, Clone)]
pub struct Template {
    pub bytes: Vec<u8>,
    pub placeholders: Vec<usize>,
    pub key: Option<Range<usize>>,
}

impl Template {
    pub fn new(workload: &Workload, protocol: Protocol) -> Template {
        let mut out = BytesMut::new();
        protocol.encode_request(&workload.args, &mut out);
        let bytes = out.to_vec();
        let placeholders = find_all(&bytes, PLACEHOLDER);
        // The first key is the argument after the command name; it is the
        // first occurrence of its bytes after the name's.
        let key = workload.args.get(1).and_then(|key| {
            let name_end = find_all(&bytes, &workload.args[0]).first()? + workload.args[0].len();
            let at = name_end + find_all(&bytes[name_end..], key).first()?;
            Some(at..at + key.len())
        });
        Template {
            bytes,
            placeholders,
            key,
        }
    }

    /// Writes one random number over every placeholder of the request at
    /// `request` (a slice as long as the template).
    pub fn randomize(&self, request: &mut [u8], number: u64) {
        for &at in &self.placeholders {
            write_digits(&mut request[at..at + PLACEHOLDER.len()], number);
        }
    }
}

/// `count` copies of a template back to back: a client's whole pipeline,
/// written with one `write` and patched in place between batches.
pub struct Batch {
    bytes: Vec<u8>,
    request_len: usize,
}

impl Batch {
    pub fn new(template: &Template, count: usize) -> Batch {
        Batch {
            bytes: template.bytes.repeat(count),
            request_len: template.bytes.len(),
        }
    }

    /// Gives the first `count` requests fresh random keys below `keyspace`.
    pub fn randomize(&mut self, template: &Template, count: usize, rng: &mut Rng, keyspace: u64) {
        if template.placeholders.is_empty() {
            return;
        }
        for request in self.bytes.chunks_exact_mut(self.request_len).take(count) {
            template.randomize(request, rng.below(keyspace));
        }
    }

    /// The first `count` requests.
    pub fn requests(&self, count: usize) -> &[u8] {
        &self.bytes[..count * self.request_len]
    }
}

/// Writes `number` as zero-padded decimal filling `out` (the low digits if
/// it does not fit).
pub fn write_digits(out: &mut [u8], mut number: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (number % 10) as u8;
        number /= 10;
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut at = 0;
    while at + needle.len() <= haystack.len() {
        if &haystack[at..at + needle.len()] == needle {
            found.push(at);
            at += needle.len();
        } else {
            at += 1;
        }
    }
    found
}

/// wyrand: a tiny, fast, statistically decent generator. Key choice needs
/// speed and spread, not cryptographic strength.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// A number in `0..bound` (`bound` > 0); the modulo bias is negligible
    /// for keyspaces far below 2^64.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keycafe_core::{Limits, key_slot};

    fn decode_args(bytes: &[u8], protocol: Protocol) -> Vec<Vec<u8>> {
        let mut parser = keycafe_core::RequestParser::new(Limits::DEFAULT);
        let (args, used) = parser
            .parse(protocol, bytes)
            .expect("template is a valid request")
            .expect("template is complete");
        assert_eq!(used, bytes.len());
        args.to_vecs()
    }

    #[test]
    fn templates_patch_keys_in_both_protocols() {
        for protocol in [Protocol::Native, Protocol::Resp2] {
            let workload = Workload::builtin("set", b"xyz").expect("set is built in");
            let template = Template::new(&workload, protocol);
            assert_eq!(template.placeholders.len(), 1);
            let mut batch = Batch::new(&template, 3);
            batch.randomize(&template, 2, &mut Rng::new(7), 1000);
            let requests = batch.requests(3);
            let len = template.bytes.len();
            for (i, request) in requests.chunks(len).enumerate() {
                let args = decode_args(request, protocol);
                assert_eq!(args[0], b"SET");
                assert_eq!(args[2], b"xyz");
                let key = String::from_utf8(args[1].clone()).expect("keys are ASCII");
                if i < 2 {
                    let number: u64 = key["key:".len()..].parse().expect("twelve digits");
                    assert!(number < 1000 && key.len() == 16, "{key}");
                } else {
                    assert_eq!(key, "key:__rand_int__", "beyond `count` nothing changes");
                }
            }
            let key = template.key.clone().expect("SET has a key");
            assert_eq!(&template.bytes[key], b"key:__rand_int__");
        }
    }

    #[test]
    fn multi_key_requests_stay_in_one_slot() {
        let workload = Workload::builtin("mset", b"v").expect("mset is built in");
        assert_eq!(workload.args.len(), 1 + 2 * MULTI_KEYS);
        let template = Template::new(&workload, Protocol::Native);
        assert_eq!(template.placeholders.len(), MULTI_KEYS);
        let mut request = template.bytes.clone();
        template.randomize(&mut request, 42);
        let args = decode_args(&request, Protocol::Native);
        let slots: Vec<u16> = args[1..].iter().step_by(2).map(|k| key_slot(k)).collect();
        assert!(slots.iter().all(|&s| s == slots[0]));
        assert_eq!(args[1], b"{key:000000000042}:0");
    }

    #[test]
    fn ping_has_no_key_and_unknown_tests_are_refused() {
        let template = Template::new(
            &Workload::builtin("PING", b"").expect("built in"),
            Protocol::Resp2,
        );
        assert_eq!(template.bytes, b"*1\r\n$4\r\nPING\r\n");
        assert!(template.key.is_none() && template.placeholders.is_empty());
        assert!(Workload::builtin("lpush", b"").is_none());
    }

    #[test]
    fn digits_are_zero_padded() {
        let mut out = [0u8; 12];
        write_digits(&mut out, 12345);
        assert_eq!(&out, b"000000012345");
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
