//! Replies printed the way redis-cli prints them.
//!
//! redis-cli has two output modes, picked by whether stdout is a terminal:
//! a human one (`"value"`, `(integer) 3`, numbered nested arrays) and a raw
//! one for scripts (just the bytes of each value, one per line). People and
//! scripts written for redis-cli should find the same text here, so both are
//! reproduced byte for byte, including redis-cli's quirks (a raw error is
//! followed by an empty line; a raw nil is an empty line).

use keycafe_core::Frame;

/// How replies are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// For a terminal: quoted strings, type hints, numbered arrays.
    Tty,
    /// For pipes: only the values.
    Raw,
}

/// Formats one top-level reply, trailing newline included.
pub fn format_reply(frame: &Frame, output: Output) -> Vec<u8> {
    let mut out = Vec::new();
    match output {
        Output::Tty => tty(&mut out, frame, ""),
        Output::Raw => {
            raw(&mut out, frame);
            out.push(b'\n');
        }
    }
    out
}

fn tty(out: &mut Vec<u8>, frame: &Frame, prefix: &str) {
    match frame {
        Frame::Error(text) => {
            out.extend_from_slice(b"(error) ");
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Frame::Simple(text) => {
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Frame::Integer(n) => out.extend_from_slice(format!("(integer) {n}\n").as_bytes()),
        Frame::Bulk(data) => {
            quote(out, data);
            out.push(b'\n');
        }
        Frame::Null => out.extend_from_slice(b"(nil)\n"),
        Frame::Array(items) if items.is_empty() => out.extend_from_slice(b"(empty array)\n"),
        Frame::Array(items) => {
            // Indices are right-aligned to the widest one, and nested arrays
            // are indented past it, as redis-cli does.
            let width = items.len().to_string().len();
            let nested = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, item) in items.iter().enumerate() {
                let lead = if i == 0 { "" } else { prefix };
                out.extend_from_slice(format!("{lead}{:>width$}) ", i + 1).as_bytes());
                tty(out, item, &nested);
            }
        }
        // RESP3's types, which keycafe-cli never asks for (it sends no
        // `HELLO 3`), print as RESP2 shows them.
        resp3 => tty(out, &resp3.clone().into_resp2(), prefix),
    }
}

fn raw(out: &mut Vec<u8>, frame: &Frame) {
    match frame {
        Frame::Error(text) => {
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Frame::Simple(text) | Frame::Bulk(text) => out.extend_from_slice(text),
        Frame::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Frame::Null => {}
        Frame::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw(out, item);
            }
        }
        resp3 => raw(out, &resp3.clone().into_resp2()),
    }
}

/// Writes `data` in double quotes with redis-cli's escapes (see
/// [`keycafe_core::repr`]).
pub fn quote(out: &mut Vec<u8>, data: &[u8]) {
    let mut text = String::with_capacity(data.len() + 2);
    keycafe_core::repr::quote(&mut text, data);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tty_text(frame: &Frame) -> String {
        String::from_utf8(format_reply(frame, Output::Tty)).expect("tty output is ASCII here")
    }

    fn raw_text(frame: &Frame) -> String {
        String::from_utf8(format_reply(frame, Output::Raw)).expect("raw output is UTF-8 here")
    }

    fn bulks(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| Frame::bulk(s.to_string())).collect())
    }

    /// Each row: reply, what redis-cli prints on a terminal, what it prints to a pipe.
    /// The expectations were taken from redis-cli 7.0 against redis-server.
    #[test]
    fn matches_redis_cli() {
        let nested = Frame::Array(vec![
            Frame::Integer(1),
            Frame::Array(vec![
                Frame::Integer(2),
                Frame::bulk("x"),
                Frame::Array(vec![]),
            ]),
            Frame::bulk("y"),
            Frame::Array(vec![]),
        ]);
        let table: Vec<(Frame, &str, &str)> = vec![
            (Frame::ok(), "OK\n", "OK\n"),
            (Frame::bulk("value"), "\"value\"\n", "value\n"),
            (Frame::Null, "(nil)\n", "\n"),
            (Frame::Integer(-3), "(integer) -3\n", "-3\n"),
            (
                Frame::error("ERR unknown command 'foo'"),
                "(error) ERR unknown command 'foo'\n",
                "ERR unknown command 'foo'\n\n",
            ),
            (
                bulks(&["a", "b", "c"]),
                "1) \"a\"\n2) \"b\"\n3) \"c\"\n",
                "a\nb\nc\n",
            ),
            (Frame::Array(vec![]), "(empty array)\n", "\n"),
            (
                nested,
                "1) (integer) 1\n2) 1) (integer) 2\n   2) \"x\"\n   3) (empty array)\n3) \"y\"\n4) (empty array)\n",
                "1\n2\nx\n\ny\n\n",
            ),
            (
                Frame::Array(vec![Frame::Null, Frame::bulk("v")]),
                "1) (nil)\n2) \"v\"\n",
                "\nv\n",
            ),
        ];
        for (frame, tty_expected, raw_expected) in table {
            assert_eq!(tty_text(&frame), tty_expected, "tty output of {frame:?}");
            assert_eq!(raw_text(&frame), raw_expected, "raw output of {frame:?}");
        }
    }

    #[test]
    fn wide_arrays_align_their_indices() {
        let rows: Vec<Frame> = (1..=11)
            .map(|i| Frame::Array(vec![Frame::Integer(i), Frame::Integer(i)]))
            .collect();
        let text = tty_text(&Frame::Array(rows));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], " 1) 1) (integer) 1");
        assert_eq!(lines[1], "    2) (integer) 1");
        assert_eq!(lines[20], "11) 1) (integer) 11");
        assert_eq!(lines[21], "    2) (integer) 11");
    }

    #[test]
    fn quotes_like_sdscatrepr() {
        let mut out = Vec::new();
        quote(&mut out, b"a\"b\\c\n\r\t\x07\x08\x00\xc3\xa9 ~");
        assert_eq!(out, b"\"a\\\"b\\\\c\\n\\r\\t\\a\\b\\x00\\xc3\\xa9 ~\"");
    }

    #[test]
    fn raw_output_is_binary_safe() {
        let frame = Frame::bulk(vec![0u8, 0xff, b'\n']);
        assert_eq!(
            format_reply(&frame, Output::Raw),
            vec![0u8, 0xff, b'\n', b'\n']
        );
    }
}
