//! `docs/protocol.md` ("Coordination") and the code agree.

use bytes::BytesMut;
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md exists");
    let start = doc.find("## Coordination").expect("a Coordination section");
    let end = doc[start..].find("\n## ").map_or(doc.len(), |e| start + e);
    doc[start..end].to_string()
}

#[test]
fn the_leave_example_has_the_documented_bytes() {
    let mut bytes = BytesMut::new();
    coord::encode_message(&NodeMessage::Leave, &mut bytes);
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // The doc separates fields with two spaces: length, bulk header, JSON.
    let documented = format!(
        "{}  {}  {}",
        hex[..4].join(" "),
        hex[4..9].join(" "),
        hex[9..].join(" ")
    );
    assert!(
        doc().contains(&documented),
        "docs/protocol.md lacks {documented}"
    );
}

#[test]
fn the_json_examples_parse_as_messages() {
    let doc = doc();
    let examples = doc
        .split("```json\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or(""));
    let mut parsed = 0;
    for block in examples {
        // Ids are shortened with "…" in the doc; give them a real shape.
        let block = block.replace('…', "");
        let messages: Vec<String> = if block.trim_start().starts_with("{\"type\":\"config\"") {
            vec![block.split_whitespace().collect()]
        } else {
            block
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        };
        for message in messages {
            let node = serde_json::from_str::<NodeMessage>(&message);
            let coordinator = serde_json::from_str::<CoordinatorMessage>(&message);
            assert!(
                node.is_ok() || coordinator.is_ok(),
                "not a message: {message}"
            );
            parsed += 1;
        }
    }
    assert_eq!(parsed, 21, "the section's JSON examples");
}
