//! Exact byte layouts: every hex example of `docs/protocol.md`, built here
//! from the values the code sends, so that the document and the encoders
//! cannot drift apart. `every_hex_block_of_the_doc_is_pinned` fails on a hex
//! block in the document that no example here produces, and
//! `every_example_is_in_the_doc` on an example the document lacks. The
//! slot function's test vectors and the proofs of "Authentication" are
//! checked against the code too.

mod common;

use bytes::BytesMut;
use common::*;
use keycafe_core::auth::{self, Step};
use keycafe_core::cluster::{ClusterConfig, NodeInfo, SlotRange};
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage, NodeReport};
use keycafe_core::{Frame, Limits, Protocol, ProtocolError, native, slot};

/// Frames and their bytes, fields separated by two spaces as in the doc.
fn golden() -> Vec<(&'static str, Frame, &'static str)> {
    #[rustfmt::skip]
    let golden = vec![
        ("PING request", Frame::request(["PING"]),
            "00 00 00 0e  2a 00 00 00 01  24 00 00 00 04 50 49 4e 47"),
        ("PONG reply", Frame::simple("PONG"),
            "00 00 00 09  2b 00 00 00 04 50 4f 4e 47"),
        ("SET foo bar request", Frame::request(["SET", "foo", "bar"]),
            "00 00 00 1d  2a 00 00 00 03  24 00 00 00 03 53 45 54  24 00 00 00 03 66 6f 6f  24 00 00 00 03 62 61 72"),
        ("OK reply", Frame::ok(),
            "00 00 00 07  2b 00 00 00 02 4f 4b"),
        ("GET foo request", Frame::request(["GET", "foo"]),
            "00 00 00 15  2a 00 00 00 02  24 00 00 00 03 47 45 54  24 00 00 00 03 66 6f 6f"),
        ("bulk reply", Frame::bulk("bar"),
            "00 00 00 08  24 00 00 00 03 62 61 72"),
        ("null reply", Frame::Null,
            "00 00 00 01  5f"),
        ("integer reply 42", Frame::Integer(42),
            "00 00 00 09  3a 00 00 00 00 00 00 00 2a"),
        ("integer reply -2", Frame::Integer(-2),
            "00 00 00 09  3a ff ff ff ff ff ff ff fe"),
        ("array reply", Frame::Array(vec![Frame::bulk("bar"), Frame::Null]),
            "00 00 00 0e  2a 00 00 00 02  24 00 00 00 03 62 61 72  5f"),
        ("empty array", Frame::Array(vec![]),
            "00 00 00 05  2a 00 00 00 00"),
        ("error reply", Frame::error("ERR syntax error"),
            "00 00 00 15  2d 00 00 00 10 45 52 52 20 73 79 6e 74 61 78 20 65 72 72 6f 72"),
        ("redirect", Frame::error("MOVED 12182 127.0.0.1:9815"),
            "00 00 00 1f  2d 00 00 00 1a 4d 4f 56 45 44 20 31 32 31 38 32 20 31 32 37 2e 30 2e 30 2e 31 3a 39 38 31 35"),
        ("integer reply 1", Frame::Integer(1),
            "00 00 00 09  3a 00 00 00 00 00 00 00 01"),
        ("DEL k record", Frame::request(["DEL", "k"]),
            "00 00 00 13 2a 00 00 00 02 24 00 00 00 03 44 45 4c 24 00 00 00 01 6b"),
    ];
    golden
}

const HELLO: &str = "ca fe 4b 43  00 01";

#[test]
fn frames_have_their_documented_bytes() {
    for (name, frame, layout) in golden() {
        let bytes = hex(layout);
        assert_eq!(encode(Protocol::Native, &frame), bytes, "{name}");
        assert_eq!(
            decode_once(Protocol::Native, &bytes, Limits::default()),
            Ok(Some((frame.clone(), bytes.len()))),
            "{name}"
        );
        // Requests also go through `encode_request` and the request parser.
        if let Frame::Array(items) = &frame
            && items.iter().all(|item| matches!(item, Frame::Bulk(_)))
        {
            let args: Vec<Vec<u8>> = items
                .iter()
                .filter_map(|item| item.as_bytes().map(<[u8]>::to_vec))
                .collect();
            assert_eq!(encode_request(Protocol::Native, &args), bytes, "{name}");
            assert_eq!(
                parse_once(Protocol::Native, &bytes, Limits::default()),
                Ok(Some((args, bytes.len()))),
                "{name}"
            );
        }
    }
}

#[test]
fn hello_has_its_documented_bytes() {
    let mut out = BytesMut::new();
    native::encode_hello(native::VERSION, &mut out);
    assert_eq!(&out[..], hex(HELLO));
    assert_eq!(native::decode_hello(&hex(HELLO)), Ok(Some(1)));
    assert_eq!(native::decode_hello(&hex("ca fe 4b 43 00 02")), Ok(Some(2)));
    assert_eq!(native::decode_hello(&hex("ca fe 4b")), Ok(None));
    assert_eq!(
        native::decode_hello(b"*1\r\n$4\r\nPING\r\n"),
        Err(keycafe_core::ProtocolError::BadMagic)
    );
    assert_eq!(
        native::decode_hello(&hex("ca fe 00")),
        Err(keycafe_core::ProtocolError::BadMagic)
    );
}

#[test]
fn the_first_byte_picks_the_protocol() {
    assert_eq!(Protocol::detect(0xca), Protocol::Native);
    // Whatever a RESP client can start with: a multibulk, or an inline
    // command's first letter, digit or whitespace.
    for byte in (0x20..=0x7e).chain([b'\t', b'\r', b'\n']) {
        assert_eq!(Protocol::detect(byte), Protocol::Resp2, "{byte:#04x}");
    }
}

// ---------------------------------------------------------------------------
// The examples beyond single frames: refusals, the cluster, coordination,
// the bus and replication.
// ---------------------------------------------------------------------------

/// The cluster secret of the examples, and their nonces.
const SECRET: &[u8] = b"an example cluster secret";
/// The node's nonce on the coordinator link (`Nn`).
const NODE_NONCE: &str = "c405d63e650276cfd4a9bdcdc9fa9c2814fd7c333b34cab37c4b548cf1317bc5";
/// The coordinator's nonce (`Nc`).
const COORDINATOR_NONCE: &str = "57202fb1db12aa01b475d23eb1f932f80d23226974cd02735833ed632a33c6bf";
/// `node-a`'s nonce in `KC.HELLO`.
const DIALLER_NONCE: &str = "abedf1270f7f447e4965a610ff4439d787f0ff9b890af652cfd4034138ade349";
/// `node-b`'s nonce in its answer.
const BUS_NONCE: &str = "0a54896ee92f246ab021f3221519e1cadb2731ddefbd8507698a32cc1c665dcf";

/// How much of a frame an example shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Whole,
    /// The first bytes; the document says what follows.
    Start,
}

/// A documented example: its name, the bytes the code produces, and how
/// much of them the document shows (in a hex block of its own).
struct Example {
    name: &'static str,
    bytes: Vec<u8>,
    shown: Shown,
}

fn frame_bytes(frame: &Frame) -> Vec<u8> {
    encode(Protocol::Native, frame)
}

fn message_bytes<M: serde::Serialize>(message: &M) -> Vec<u8> {
    let mut out = BytesMut::new();
    coord::encode_message(message, &mut out);
    out.to_vec()
}

fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = BytesMut::new();
    native::encode_request(args, &mut out);
    out.to_vec()
}

fn node_a() -> NodeInfo {
    NodeInfo {
        id: "node-a".into(),
        client_addr: "127.0.0.1:9814".into(),
        bus_addr: "127.0.0.1:19814".into(),
        replica_of: None,
    }
}

/// The configuration of the coordination example: `node-a` owns every slot.
fn example_config() -> ClusterConfig {
    ClusterConfig {
        epoch: 2,
        nodes: vec![node_a()],
        slots: vec![SlotRange {
            start: 0,
            end: 16383,
            owner: "node-a".into(),
        }],
        migrations: vec![],
    }
}

/// A bitmap claiming slots 0 to 8191.
fn half_bitmap() -> Vec<u8> {
    let mut bitmap = vec![0xff; 1024];
    bitmap.resize(2048, 0);
    bitmap
}

fn examples() -> Vec<Example> {
    let whole = |name, bytes| Example {
        name,
        bytes,
        shown: Shown::Whole,
    };
    let error = |text: &str| frame_bytes(&Frame::error(text.to_string()));
    let coordinator_proof =
        auth::proof(SECRET, Step::Coordinator, NODE_NONCE, COORDINATOR_NONCE, "");
    let node_proof = auth::proof(
        SECRET,
        Step::CoordinatorClient,
        COORDINATOR_NONCE,
        NODE_NONCE,
        "node-a",
    );
    let bus_server_proof = auth::proof(SECRET, Step::BusServer, DIALLER_NONCE, BUS_NONCE, "");
    let bus_client_proof = auth::proof(SECRET, Step::BusClient, BUS_NONCE, DIALLER_NONCE, "node-a");
    let standalone_slots = Frame::Array(vec![Frame::Array(vec![
        Frame::Integer(0),
        Frame::Integer(16383),
        Frame::Array(vec![
            Frame::bulk("127.0.0.1"),
            Frame::Integer(9814),
            Frame::bulk("5f0c2a8b1e9d4c7a3b6e0f1d2c3b4a5968778695"),
        ]),
    ])]);
    let heartbeat = NodeMessage::Heartbeat(NodeReport {
        seq: 1,
        epoch: 2,
        keys: 0,
        slot_keys: vec![(0, 16383, 0)],
        commands_processed: Some(0),
        used_memory: Some(540_672),
        ..NodeReport::default()
    });
    let config_json = serde_json::to_vec(&example_config()).expect("a configuration serialises");
    let bitmap = half_bitmap();
    let no_history = "0".repeat(40);

    #[rustfmt::skip]
    let examples = vec![
        whole("hello refused: version", error("ERR unsupported protocol version 2; this node speaks 1")),
        whole("hello refused: magic", error(&ProtocolError::BadMagic.reply_text())),
        whole("connection refused: maxclients", b"-ERR max number of clients reached\r\n".to_vec()),
        whole("unknown tag", error(&ProtocolError::UnknownFrameType(0x21).reply_text())),
        whole("unknown command", request(&[b"FOO", b"a", b"b"])),
        whole("unknown command reply", error("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")),
        whole("CLUSTER SLOTS of a standalone node", frame_bytes(&standalone_slots)),
        whole("coordination: leave", message_bytes(&NodeMessage::Leave)),
        whole("coordination: hello", message_bytes(&NodeMessage::Hello {
            node: "node-a".into(),
            nonce: NODE_NONCE.into(),
        })),
        whole("coordination: challenge", message_bytes(&CoordinatorMessage::Challenge {
            nonce: COORDINATOR_NONCE.into(),
            proof: coordinator_proof,
        })),
        whole("coordination: register", message_bytes(&NodeMessage::Register {
            node: node_a(),
            epoch: 0,
            proof: node_proof,
            primary: None,
        })),
        whole("coordination: config", message_bytes(&CoordinatorMessage::Config(example_config()))),
        whole("coordination: heartbeat", message_bytes(&heartbeat)),
        whole("coordination: lease", message_bytes(&CoordinatorMessage::Lease { seq: 1, ms: 2500 })),
        whole("coordination: migration_done", message_bytes(&NodeMessage::MigrationDone {
            slot: 5461,
            to: "node-b".into(),
        })),
        whole("coordination: error (leave)", message_bytes(&CoordinatorMessage::Error {
            message: "node node-a is the last member of the cluster; its slots would have nowhere to go".into(),
        })),
        whole("coordination: failover", message_bytes(&NodeMessage::Failover {
            primary: "node-a".into(),
        })),
        whole("coordination: error (first message)", message_bytes(&CoordinatorMessage::Error {
            message: "the first message must be hello".into(),
        })),
        whole("bus: KC.HELLO", request(&[b"KC.HELLO", b"node-a", DIALLER_NONCE.as_bytes()])),
        whole("bus: KC.HELLO reply", frame_bytes(&Frame::Array(vec![
            Frame::bulk(BUS_NONCE),
            Frame::bulk(bus_server_proof),
        ]))),
        whole("bus: KC.AUTH", request(&[b"KC.AUTH", bus_client_proof.as_bytes()])),
        whole("bus: WRONGPASS", error("WRONGPASS the peer does not hold this cluster's secret")),
        whole("bus: NOAUTH", error("NOAUTH Authentication required.")),
        Example {
            name: "bus: KC.PING (its start)",
            bytes: request(&[b"KC.PING", b"node-a", b"2", &bitmap]),
            shown: Shown::Start,
        },
        Example {
            name: "bus: KC.PING reply (its start)",
            bytes: frame_bytes(&Frame::Array(vec![
                Frame::bulk("node-b"),
                Frame::bulk("2"),
                Frame::bulk(bitmap.clone()),
            ])),
            shown: Shown::Start,
        },
        whole("bus: KC.CONFIG", request(&[b"KC.CONFIG"])),
        whole("bus: KC.CONFIG reply", frame_bytes(&Frame::bulk(config_json))),
        whole("bus: KC.IMPORT", request(&[b"KC.IMPORT", b"12182", b"foo", b"bar", b"-1"])),
        whole("bus: KC.IMPORT refused", error("ERR slot 12182 is not being imported by this node")),
        whole("bus: KC.FAILOVER.PAUSE", request(&[b"KC.FAILOVER.PAUSE", b"5000"])),
        whole("bus: KC.FAILOVER.PAUSE reply", frame_bytes(&Frame::Integer(1_048_576))),
        whole("bus: KC.FAILOVER.RESUME", request(&[b"KC.FAILOVER.RESUME"])),
        whole("replication: KC.PSYNC", request(&[
            b"KC.PSYNC",
            b"node-b",
            no_history.as_bytes(),
            b"-1",
            b"127.0.0.1:9815",
        ])),
        whole("replication: FULLSYNC", frame_bytes(&Frame::Array(vec![
            Frame::simple("FULLSYNC"),
            Frame::bulk("8f2e6c1d9a0b7e3f5c4d2a1b0e9f8d7c6b5a4938"),
            Frame::bulk("0"),
        ]))),
        whole("replication: KC.SYNCED", request(&[b"KC.SYNCED"])),
        whole("replication: KC.ACK", request(&[b"KC.ACK", b"23"])),
        whole("replication: SET PXAT record", request(&[b"SET", b"foo", b"bar", b"PXAT", b"1767225600000"])),
    ];
    examples
}

/// Every documented example: the single frames, the hello, and the rest.
fn all_examples() -> Vec<Example> {
    let frames = golden().into_iter().map(|(name, frame, _)| Example {
        name,
        bytes: frame_bytes(&frame),
        shown: Shown::Whole,
    });
    let hello = Example {
        name: "hello",
        bytes: hex(HELLO),
        shown: Shown::Whole,
    };
    frames.chain([hello]).chain(examples()).collect()
}

/// Lowercase hex bytes separated by single spaces.
fn normalized(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md exists")
}

/// The fenced code blocks of the document that hold nothing but hex bytes,
/// as bytes.
fn hex_blocks(doc: &str) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut open: Option<Vec<&str>> = None;
    for line in doc.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            match open.take() {
                Some(lines) => blocks.push(lines.join("\n")),
                None => open = Some(Vec::new()),
            }
        } else if let Some(lines) = open.as_mut() {
            lines.push(trimmed);
        }
    }
    let is_hex_byte = |word: &str| word.len() == 2 && word.bytes().all(|b| b.is_ascii_hexdigit());
    blocks
        .into_iter()
        .filter(|block| {
            let mut words = block.split_whitespace().peekable();
            words.peek().is_some() && words.all(is_hex_byte)
        })
        .map(|block| hex(&block))
        .collect()
}

impl Example {
    /// True if `block` is what the document should show of this example.
    fn shown_as(&self, block: &[u8]) -> bool {
        match self.shown {
            Shown::Whole => self.bytes == block,
            // At least the frame's prefix and first header, and less than
            // the whole frame.
            Shown::Start => {
                block.len() >= 9 && block.len() < self.bytes.len() && self.bytes.starts_with(block)
            }
        }
    }
}

#[test]
fn every_example_is_in_the_doc() {
    let blocks = hex_blocks(&doc());
    for example in all_examples() {
        assert!(
            blocks.iter().any(|block| example.shown_as(block)),
            "docs/protocol.md lacks the {} example as a block of its own: {}",
            example.name,
            example
                .bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
}

#[test]
fn every_hex_block_of_the_doc_is_pinned() {
    let examples = all_examples();
    let blocks = hex_blocks(&doc());
    assert!(blocks.len() >= 50, "found only {} hex blocks", blocks.len());
    for block in blocks {
        assert!(
            examples.iter().any(|example| example.shown_as(&block)),
            "a hex block of docs/protocol.md that no example here produces: {}",
            normalized(
                &block
                    .iter()
                    .map(|b| format!("{b:02x} "))
                    .collect::<String>()
            ),
        );
    }
}

/// The rows of the table that follows `heading` in the document.
fn table_after<'a>(doc: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
    let start = doc.find(heading).expect("the heading is in the doc");
    doc[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|line| line.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect()
}

/// The text between the first pair of backticks in `cell`.
fn quoted(cell: &str) -> &str {
    cell.split('`').nth(1).expect("a quoted value")
}

#[test]
fn the_slot_functions_test_vectors_hold() {
    let doc = doc();
    let rows = table_after(&doc, "Test vectors (`CLUSTER KEYSLOT key`");
    assert_eq!(rows.len(), 15, "the vectors");
    for row in rows {
        let [key, hashed, crc, slot_number] = row[..] else {
            panic!("a row of four cells: {row:?}");
        };
        let key: Vec<u8> = match key {
            "(empty)" => Vec::new(),
            bytes if bytes.starts_with("the bytes") => hex(quoted(bytes)),
            text => quoted(text).as_bytes().to_vec(),
        };
        let hashed: &[u8] = match hashed {
            "the whole key" => &key,
            text => quoted(text).as_bytes(),
        };
        let crc = u16::from_str_radix(quoted(crc).trim_start_matches("0x"), 16).unwrap();
        let slot_number: u16 = slot_number.parse().unwrap();
        assert_eq!(slot::hash_tag(&key), hashed, "{key:?}");
        assert_eq!(slot::crc16(hashed), crc, "{key:?}");
        assert_eq!(slot::key_slot(&key), slot_number, "{key:?}");
    }
    assert_eq!(slot::crc16(b"123456789"), 0x31c3, "the check value");
}

#[test]
fn the_proofs_of_the_authentication_section_hold() {
    let doc = doc();
    let rows = table_after(&doc, "Test vectors, with the secret");
    let steps = [
        (Step::Coordinator, NODE_NONCE, COORDINATOR_NONCE, ""),
        (
            Step::CoordinatorClient,
            COORDINATOR_NONCE,
            NODE_NONCE,
            "node-a",
        ),
        (Step::BusServer, DIALLER_NONCE, BUS_NONCE, ""),
        (Step::BusClient, BUS_NONCE, DIALLER_NONCE, "node-a"),
    ];
    assert_eq!(rows.len(), steps.len());
    for (row, (step, challenge, answer, id)) in rows.iter().zip(steps) {
        let expected = auth::proof(SECRET, step, challenge, answer, id);
        assert_eq!(quoted(row[5]), expected, "{row:?}");
        // The abbreviated nonces are the ones used.
        let (first, last) = quoted(row[2]).split_once('…').unwrap();
        assert!(challenge.starts_with(first) && challenge.ends_with(last));
        let (first, last) = quoted(row[3]).split_once('…').unwrap();
        assert!(answer.starts_with(first) && answer.ends_with(last));
    }
    // The whole nonces appear in the examples' JSON.
    for nonce in [NODE_NONCE, COORDINATOR_NONCE] {
        assert!(doc.contains(nonce), "{nonce}");
    }
}

#[test]
fn each_coordination_example_shows_its_json() {
    let doc = doc();
    let coordination = all_examples()
        .into_iter()
        .filter(|e| e.name.starts_with("coordination:"));
    let mut shown = 0;
    for example in coordination {
        let mut bytes = BytesMut::from(&example.bytes[..]);
        let Ok(Some(Frame::Bulk(json))) = native::decode_frame(&mut bytes, &Limits::DEFAULT) else {
            panic!("{}: a bulk string", example.name);
        };
        let json = std::str::from_utf8(&json).unwrap();
        // In a block of its own, or in running text.
        assert!(
            doc.contains(&format!("```json\n{json}\n```")) || doc.contains(&format!("`{json}`")),
            "{}: the document shows {json}",
            example.name
        );
        shown += 1;
    }
    assert_eq!(shown, 11);
}
